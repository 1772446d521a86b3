"""The environment the dispatcher's parsers read, resolved from its sources, weakest first: each
setting's default (the parsers' own), what `VOICEFLEET_SIZE` and `VOICEFLEET_PROFILE` derive, the file
`VOICEFLEET_CONFIG` names (TOML, or YAML by its name), then the environment. The parsers are unchanged:
they read one mapping of names to text, as from the environment alone."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.settings.derived import DEFAULT_PROFILE, PROFILES, SIZES, derived
from voicefleet_settings.names import by_name

CONFIG_VARIABLE = "VOICEFLEET_CONFIG"
SIZE_VARIABLE = "VOICEFLEET_SIZE"
PROFILE_VARIABLE = "VOICEFLEET_PROFILE"
ENVIRONMENT, FILE, DEFAULT = "environment", "file", "default"
MAX_FILE_BYTES = 1_000_000


class SourceError(ValueError):
    """A source that cannot be read: its one line names the file or variable and the way forward."""


@dataclass(frozen=True)
class Resolved:
    """The effective environment, and where each of its settings came from."""

    env: dict[str, str] = field(repr=False)  # holds secrets
    sources: dict[str, str]
    profile: str
    size: str | None

    def source(self, name: str) -> str:
        """`environment`, `file`, `size large`, `profile prod` or `default`."""
        return self.sources.get(name, DEFAULT)


def _text(path: Path, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
        return ",".join(str(v) for v in value)
    raise SourceError(f"{CONFIG_VARIABLE}={path}: {name} must be text, a number, true/false or a list of them")


def yaml_1_2(text: str) -> Any:
    """The text as YAML 1.2 reads its words: `on`, `off`, `yes` and `no` stay text (YAML 1.1, PyYAML's,
    makes them true/false, which would turn `RECORDING: on` into `1`); only true/false are booleans."""
    import re

    import yaml  # only where a YAML library is installed: TOML needs none

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types here
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader, with fewer booleans


def read_file(path: Path) -> dict[str, str]:
    """A settings file's names and values; any name no setting has is an error, naming the nearest."""
    from dispatcher.settings.typos import nearest

    try:  # no more than the limit is read: a huge file, or /dev/zero, would hold the start's memory
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"{CONFIG_VARIABLE}={path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SourceError(f"{CONFIG_VARIABLE}={path}: larger than {MAX_FILE_BYTES} bytes")
    data: Any
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml_1_2(raw.decode())
        else:
            data = tomllib.loads(raw.decode())
    except ImportError:
        raise SourceError(f"{CONFIG_VARIABLE}={path}: no YAML library here; write the file as TOML") from None
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib's and yaml's errors are ValueErrors or YAMLError
        raise SourceError(f"{CONFIG_VARIABLE}={path}: not valid: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml where it is absent
        raise SourceError(f"{CONFIG_VARIABLE}={path}: not valid: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{CONFIG_VARIABLE}={path}: must hold settings by name (NAME = value)")
    known = by_name()
    faults = []
    for name in data:
        if name not in known:
            meant = nearest(str(name))
            faults.append(f"{name} is no setting" + (f" (did you mean {meant}?)" if meant else ""))
        elif known[name].secret:  # a file is plain configuration: it is read, copied and committed
            faults.append(f"{name} is a secret: set it in the environment, from a secret store")
    if faults:
        raise SourceError(f"{CONFIG_VARIABLE}={path}: {'; '.join(faults)}")
    return {str(name): _text(path, str(name), value) for name, value in data.items()}


def resolve(environ: Mapping[str, str]) -> Resolved:
    """The effective environment: defaults < size and profile < file < environment, as the page's
    "Where a setting comes from" says (derived values are defaults, so a file's value wins over them too)."""
    path = environ.get(CONFIG_VARIABLE, "").strip()
    from_file = read_file(Path(path)) if path else {}
    env = {**from_file, **environ}
    profile = env.get(PROFILE_VARIABLE, "").strip().lower() or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise SourceError(f"{PROFILE_VARIABLE}={profile!r} is not one of {', '.join(PROFILES)}")
    size = env.get(SIZE_VARIABLE, "").strip().lower() or None
    if size is not None and size not in SIZES:
        raise SourceError(f"{SIZE_VARIABLE}={size!r} is not one of {', '.join(SIZES)}")
    sources: dict[str, str] = {}
    effective: dict[str, str] = {}
    for name, value in derived(size, profile).items():
        effective[name] = value
        sources[name] = f"profile {profile}" if name in PROFILES[profile] else f"size {size}"
    for name, value in from_file.items():
        effective[name], sources[name] = value, FILE
    for name, value in environ.items():
        effective[name], sources[name] = value, ENVIRONMENT
    known = by_name()
    for name in [n for n in effective if n in known and known[n].name != n]:  # an old name: the parsers read the new
        new = known[name].name
        if new not in effective:
            effective[new], sources[new] = effective[name], f"{sources[name]}, as {name}"
    return Resolved(env=effective, sources=sources, profile=profile, size=size)
