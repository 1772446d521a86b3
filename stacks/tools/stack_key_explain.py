"""`voicefleet config explain KEY --stack NAME` for a stack key (`maxConcurrentSessions`), not a
dispatcher setting: its meaning and type (Pulumi.yaml), its default and what the stack's size or
profile derive, its value in the stack file (a secret's never shown), and the dispatcher settings it
writes (stacks/config/dispatcher_keys.py), each of which `explain` takes in turn. Read from the files
alone: the program does not run."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from functools import cache
from typing import Any

import yaml

from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES, derived
from stacks.config.dispatcher_keys import ENTRIES
from stacks.config.key_table import CHOICES, SECRET_KEYS, kinds
from stacks.config.reader import DEFAULTS, NAMESPACE
from stacks.config.stack_keys import known
from stacks.tools.paths import PROJECT_FILE, stack_document, stack_file
from stacks.tools.preflight.cli_config import has_secure_value

WIDTH = 100  # as the dispatcher's explain wraps a meaning


@cache
def _declared() -> dict[str, Any]:
    return yaml.safe_load(PROJECT_FILE.read_text()).get("config") or {}


def stack_key(name: str) -> str | None:
    """The project's key `name` names (`maxConcurrentSessions`, `voicefleet:maxConcurrentSessions`), or None."""
    bare = name.removeprefix(f"{NAMESPACE}:")
    return bare if ":" not in bare and bare in known() else None


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value).lower() if isinstance(
        value, bool) else str(value)


def explain_key(key: str, stack: str, overrides: Mapping[str, str]) -> list[str]:
    """What `key` means and where this stack's value of it comes from."""
    spec = _declared().get(key)
    spec = spec if isinstance(spec, dict) else {}
    full = f"{NAMESPACE}:{key}"
    meaning = " ".join(str(spec.get("description") or "(see docs/pulumi.md)").split())
    kind = " or ".join(kinds(key)) + (", a secret" if key in SECRET_KEYS else "")
    if key in CHOICES:
        kind += " (one of " + ", ".join(choice or '""' for choice in CHOICES[key]) + ")"
    default = _shown(DEFAULTS[key]) if key in DEFAULTS else "unset"
    lines = [textwrap.fill(f"{key} (stack key {full}): {meaning}", width=WIDTH, subsequent_indent="  ",
                           break_on_hyphens=False),
             f"  type: {kind}; default: {default if default != '' else 'unset'}"]
    config = {name if ":" in name else f"{NAMESPACE}:{name}": value
              for name, value in (stack_document(stack).get("config") or {}).items()}
    size, profile = config.get(f"{NAMESPACE}:size"), config.get(f"{NAMESPACE}:profile")
    given = {name if ":" in name else f"{NAMESPACE}:{name}": value for name, value in overrides.items()}
    cloud = config.get(f"{NAMESPACE}:cloud", "")
    by = derived(size if size in SIZE_NAMES else None, profile if profile in PROFILE_NAMES else None,
                 cloud=cloud).get(key)
    if full in given:
        lines.append(f"  value: {given[full]} (--config)")
    elif full in config:
        value = config[full]
        shown = "(a secret, set)" if has_secure_value(value) else _shown(value)
        lines.append(f"  value: {shown} ({stack_file(stack).name})")
    elif by is not None:
        named = {"size": size, "cloud": cloud}.get(by[1], profile or "dev")
        lines.append(f"  value: {by[0]} (derived from {by[1]}: {named})")
    else:
        lines.append(f"  value: unset in {stack_file(stack).name} (its default applies)")
    cloud = str(config.get(f"{NAMESPACE}:cloud", ""))
    if settings := sorted({entry.setting for entry in ENTRIES if entry.key == key and entry.applies_to(cloud)}):
        lines.append(f"  sets the dispatcher's {', '.join(settings)} (voicefleet config explain {settings[0]} "
                     f"--stack {stack})")
    secret = key in SECRET_KEYS
    lines.append(f"  set it: pulumi config set --secret {key} -s {stack} (it prompts for the value)" if secret
                 else f"  set it: pulumi config set {key} <value> -s {stack}")
    return lines
