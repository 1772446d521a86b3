"""Where the tools find the repository's parts: one copy of each path, whatever folder runs them."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dispatcher.settings.sources import yaml_1_2
from stacks.config.reader import SettingsError

REPOSITORY = Path(__file__).resolve().parents[2]  # the folder of Pulumi.yaml
PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
STACK_FILES = REPOSITORY / "stacks"  # Pulumi.yaml `stackConfigDir`: Pulumi.<stack>.yaml
PROGRAM = REPOSITORY / "infra" / "__main__.py"  # Pulumi.yaml `main: infra/`
SNAPSHOTS = REPOSITORY / "tests" / "infra" / "snapshots"  # the committed offline plans


def stack_file(stack: str) -> Path:
    return STACK_FILES / f"Pulumi.{stack}.yaml"


def stack_document(stack: str) -> dict[str, Any]:
    """The stack file as YAML, its `config` a mapping: a file that is not is one SettingsError naming
    where (the tools print it as one line, never a traceback). Read as the Pulumi CLI reads it: YAML 1.2
    (its gopkg.in/yaml.v3), where `recording: off` is the word `off`, not YAML 1.1's false."""
    name = stack_file(stack).name
    try:
        document = copy.deepcopy(_parsed(stack_file(stack).read_text())) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SettingsError(f"{name} is not YAML{where}: {problem}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise SettingsError(f"{name} must be a mapping with a `config:` mapping of KEY: VALUE")
    return document


@lru_cache(maxsize=8)
def _parsed(text: str) -> Any:
    """A stack file's text as YAML 1.2, parsed once per content: a check reads its stack file six times
    (the plan's config, its placeholders, the check's own keys); each reader gets its own copy."""
    return yaml_1_2(text)


def stack_names() -> list[str]:
    """The example stacks: every Pulumi.<stack>.yaml in the stack config folder."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACK_FILES.glob("Pulumi.*.yaml"))
