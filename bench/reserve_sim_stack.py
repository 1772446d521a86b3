"""A shipped stack's reserve settings, read from its Pulumi files, for the simulator.

The project file (Pulumi.yaml) declares every key with its default; the stack's file
(`<stackConfigDir>/Pulumi.<stack>.yaml`) sets some of them under `voicefleet:`. The reserve keys
(`reserve*`) map to the dispatcher's variables by their own names (`reserveMinIdle` →
`RESERVE_MIN_IDLE`), exactly as the stacks pass them on, and are parsed by the dispatcher's own
parser; the bot's size prices it and `maxConcurrentSessions` caps the sessions. Reading the YAML
rather than running the stacks' program keeps this a reader of what is shipped. A key the stack
leaves to its `size` or `profile` is what the program derives (stacks/config/derived.py, the one
table), else the program's own default (the project file declares those keys with an empty default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived, derived_keys
from stacks.config.reader import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "voicefleet"
DERIVED_KEYS = derived_keys()


class StackError(ValueError):
    """A stack that is not there or cannot be read: the message says which and why."""


@dataclass(frozen=True)
class StackSettings:
    name: str
    cloud: str  # aws | gcp
    values: dict[str, Any]  # every voicefleet key: the stack's value, else the project default

    def reserve_env(self) -> dict[str, str]:
        """The RESERVE_* variables the stack gives the dispatcher ("" leaves the dispatcher's default)."""
        env = {}
        for key, value in self.values.items():
            if key.startswith("reserve") and str(value).strip() != "":
                env[variable_for(key)] = str(value)
        return env

    @property
    def max_sessions(self) -> int:
        return int(self.values["maxConcurrentSessions"])


def variable_for(key: str) -> str:
    """`reserveMaxIdleSeconds` → `RESERVE_MAX_IDLE_SECONDS`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()


def stack_names(root: Path = ROOT) -> list[str]:
    folder = root / str(_project(root).get("stackConfigDir", "."))
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in folder.glob("Pulumi.*.yaml"))


def load_stack(name: str, root: Path = ROOT) -> StackSettings:
    project = _project(root)
    path = root / str(project.get("stackConfigDir", ".")) / f"Pulumi.{name}.yaml"
    if not path.is_file():
        raise StackError(f"no stack {name!r}: {path} does not exist (stacks: {', '.join(stack_names(root))})")
    declared = project.get("config") or {}
    values = {key: spec.get("default", "") for key, spec in declared.items()
              if isinstance(spec, dict) and ":" not in key}
    config = _read(path).get("config") or {}
    prefix = f"{NAMESPACE}:"
    values.update({key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)})
    size, profile = str(values.get("size") or ""), str(values.get("profile") or "")
    found = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                    cloud=str(values.get("cloud", "")))
    for key, value in list(values.items()):
        if str(value) == "" and key in found:
            values[key] = found[key][0]
        elif str(value) == "" and key in DEFAULTS and key in DERIVED_KEYS:
            values[key] = DEFAULTS[key]
    cloud = str(values.get("cloud", ""))
    if cloud not in ("aws", "gcp"):
        raise StackError(f"stack {name!r}: voicefleet:cloud is {cloud!r}, not aws or gcp")
    return StackSettings(name, cloud, values)


def _project(root: Path) -> dict[str, Any]:
    return _read(root / "Pulumi.yaml")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise StackError(f"{path}: not a YAML mapping")
    return data
