"""Reading a JSON list of cells (`ECS_CELLS`, `CLOUDRUN_CELLS`, `GCE_CELLS`): the list, each cell's name and
fields, and the same cell listed twice, refused alike with a message naming the way forward."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.settings import SettingsError

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Google's rule: a project id is 6-30 lower-case letters, digits or hyphens, from a letter, not ending in a hyphen.
_GCP_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
MAX_CELLS = 50  # each cell holds its own connections and keys; past this, a list is a mistake


def cell_items(setting: str, raw: str, example: str, each: str) -> list[Any]:
    """The items `setting` lists (empty: no cells). `each`: what one cell is ("AWS account")."""
    if not raw.strip():
        return []
    try:
        listed = json.loads(raw)
    except ValueError:
        raise SettingsError(f"{setting} is not JSON: write a list of cells, e.g. {example}") from None
    if not isinstance(listed, list) or not listed:
        raise SettingsError(f"{setting} must be a non-empty JSON list of cells, e.g. {example}")
    if len(listed) > MAX_CELLS:
        raise SettingsError(f"{setting} lists {len(listed)} cells: at most {MAX_CELLS} (one per {each})")
    return listed


def cell_fields(item: Any, where: str, fields: Sequence[str], example: str, required: str) -> Mapping[str, Any]:
    """One item as an object of known fields, with a valid `name`. `required`: what it must have."""
    if not isinstance(item, Mapping):
        raise SettingsError(f"{where} must be an object with at least {required}, e.g. {example}")
    if unknown := sorted(set(item) - set(fields)):
        raise SettingsError(f"{where}: unknown field {unknown[0]!r} (a cell has {', '.join(fields)})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(f"{where}: name must be 1-32 lower-case letters, digits or '-' (got {str(name)[:40]!r})")
    return item


def named_once(setting: str, listed: Mapping[str, Sequence[str]], each: str, why: str) -> None:
    """Refuses a name (`listed`: what is named → each cell's) that two cells share."""
    for what, seen in listed.items():
        if twice := sorted({n for n in seen if seen.count(n) > 1}):
            raise SettingsError(f"{setting} names {what} twice: {', '.join(twice)} (each cell is one {each}, "
                                f"with its own name: {why})")


def whole_number(item: Mapping[str, Any], key: str, where: str, hint: str = "", least: int = 1) -> int | None:
    """A field that, when set, must be a whole number of at least `least`; `hint`: what it is, said after a refusal."""
    value = item.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
        raise SettingsError(f"{where}: {key} must be a whole number of at least {least}{hint}")
    return value


def positive_number(item: Mapping[str, Any], key: str, where: str, hint: str = "",
                    minimum: float = 0.0) -> float | None:
    """A field that, when set, must be a finite number above 0 and at least `minimum` (JSON's 1e999 reads as
    infinity, NaN as NaN; an integer too large for a float as infinity)."""
    value = item.get(key)
    if value is None:
        return None
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0 or number < minimum:
        least = f" of at least {minimum:g}" if minimum > 0 else " above 0"
        raise SettingsError(f"{where}: {key} must be a number{least}{hint}")
    return number


def text_field(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SettingsError(f"{where}: {key} must be a non-empty string")
    return value.strip() if value is not None else None


def matching_field(item: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str], must: str) -> str | None:
    """A text field that, when set, must match `pattern`; refused as "`key` must be `must`"."""
    value = text_field(item, key, where)
    if value is not None and not pattern.fullmatch(value):
        raise SettingsError(f"{where} ({item['name']}): {key} must be {must}")
    return value


def gcp_project(item: Mapping[str, Any], where: str) -> str:
    """A GCP cell's `project`: a project id, or refused naming the form it takes."""
    project = item.get("project")
    if not isinstance(project, str) or not _GCP_PROJECT.fullmatch(project):
        raise SettingsError(f"{where}: project must be a GCP project id (6-30 lower-case letters, digits or '-', "
                            f"from a letter), e.g. \"voicefleet-cell-a\" (got {str(project)[:40]!r})")
    return project
