"""docs/configuration.md and docs/reference/configuration.schema.json, generated from the catalogue.

    uv run python -m dispatcher.settings.docs > docs/configuration.md
    uv run python -m dispatcher.settings.docs --schema > docs/reference/configuration.schema.json

A test holds both checked-in files equal to what this writes, so the page can only change here."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from dispatcher.settings.derived import PROFILES, SIZES
from dispatcher.settings.sources import CONFIG_VARIABLE, PROFILE_VARIABLE, SIZE_VARIABLE
from voicefleet_settings.catalogue import CLOSING, FIRST_SETTINGS, INTRODUCTION, SECTIONS, SETTINGS
from voicefleet_settings.model import (
    BOOLEAN,
    ENUM,
    FALSE_WORDS,
    INTEGER,
    LIST,
    NUMBER,
    TRUE_WORDS,
    Section,
    Setting,
)
from voicefleet_settings.names import meaning


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def _heading_of(section: Section) -> str:
    """The last heading at or before a section: where a link to one of its settings lands."""
    index = SECTIONS.index(section)
    for earlier in reversed(SECTIONS[: index + 1]):
        headings = [line for line in earlier.prose.splitlines() if line.startswith("#")]
        if headings:
            return headings[-1].lstrip("#").strip()
    return ""


def _rows(section: Section) -> Iterator[list[Setting]]:
    row: list[Setting] = []
    for setting in SETTINGS:
        if setting.section != section.key:
            continue
        if setting.row is None and row:
            yield row
            row = []
        row.append(setting)
    if row:
        yield row


def _joined(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else " / ".join(values)


def _allowed(setting: Setting) -> str:
    """The allowed column: a type's words and bounds (`at least 1`), a list of choices, or "" for text."""
    if setting.kind in (ENUM, LIST) and setting.choices:
        return ("one of " if setting.kind == ENUM else "list of ") + ", ".join(f"`{c}`" for c in setting.choices)
    if setting.kind == BOOLEAN:
        return "`1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`"
    kind = {INTEGER: "whole number", NUMBER: "number", LIST: "comma-separated list"}.get(setting.kind, "")
    return ", ".join(part for part in (kind, setting.allowed) if part)


def _table(section: Section) -> list[str]:
    head = ["variable", "default", *(["example"] if section.examples else []), "allowed", "meaning"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in _rows(section):
        cells = [" / ".join(f"`{s.name}`" for s in row), _joined([s.shown_default for s in row])]
        if section.examples:
            cells.append(_joined([s.example or "" for s in row]))
        cells.append(_joined([_allowed(s) for s in row]))
        cells.append(row[0].meaning)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _first_settings() -> list[str]:
    by_name = {s.name: s for s in SETTINGS}
    sections = {s.key: s for s in SECTIONS}
    lines = ["## The ten a team sets", ""]
    for name, why in FIRST_SETTINGS.items():
        where = _anchor(_heading_of(sections[by_name[name].section]))
        lines.append(f"- `{name}`: {why} ([more](#{where}))")
    return lines


def _derived() -> list[str]:
    lines = [
        "## Size and profile",
        "",
        f"`{SIZE_VARIABLE}` (`{'`, `'.join(SIZES)}`) and `{PROFILE_VARIABLE}`"
        f" (`{'`, `'.join(PROFILES)}`, default `dev`)",
        "set the defaults of the settings below; a setting set explicitly (in the environment or the",
        "file) wins, and `voicefleet config explain NAME` shows which one applies and why. Unset, neither",
        "changes anything. With `prod`, an unknown variable that looks like a voicefleet setting (a",
        "misspelt one) stops the dispatcher at start-up, and so does a missing `DISPATCHER_API_KEYS`",
        "(even on a loopback address); with `dev` a misspelt one is a warning naming the nearest.",
        "",
        "| setting | " + " | ".join(f"`{s}`" for s in SIZES) + " |",
        "|---|" + "---|" * len(SIZES),
    ]
    names = list(dict.fromkeys(n for values in SIZES.values() for n in values))
    for name in names:
        lines.append(f"| `{name}` | " + " | ".join(f"`{SIZES[s].get(name, '')}`" for s in SIZES) + " |")
    lines += ["", "| setting | " + " | ".join(f"`{p}`" for p in PROFILES) + " |", "|---|" + "---|" * len(PROFILES)]
    names = list(dict.fromkeys(n for values in PROFILES.values() for n in values))
    for name in names:
        cells = [f"`{PROFILES[p][name]}`" if name in PROFILES[p] else "its default" for p in PROFILES]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def _sources() -> list[str]:
    return [
        "## Where a setting comes from",
        "",
        f"Environment variables, or a file: `{CONFIG_VARIABLE}=/etc/voicefleet.toml` (TOML, or YAML by its",
        "`.yaml`/`.yml` name) holding settings by their names (`MAX_CONCURRENT_SESSIONS = 50`). A name",
        "the file holds that no setting has is an error. From the weakest to the strongest:",
        "",
        "1. the setting's default (below);",
        f"2. what `{SIZE_VARIABLE}` and `{PROFILE_VARIABLE}` derive (above);",
        f"3. the file `{CONFIG_VARIABLE}` names;",
        "4. the environment.",
        "",
        "Secrets belong in the environment, from a secret store, never in the file.",
        "",
        "<!-- runnable -->",
        "```sh",
        "uv run voicefleet config check        # every fault of this configuration, one a line (exit 1)",
        "uv run voicefleet config explain PORT # meaning, type, default, value and where it came from",
        "uv run voicefleet config diff         # what differs from the defaults, secrets masked",
        "```",
        "",
        "A dispatcher a Pulumi stack deploys gets its settings from the stack's keys: `--stack NAME` runs the",
        "same three commands on the environment that stack gives its dispatcher, read offline from",
        "`stacks/Pulumi.NAME.yaml`, each value's source the stack key it came from",
        "([pulumi.md](pulumi.md#stack-keys-and-the-dispatchers-settings) lists which key sets which setting).",
    ]


def page() -> str:
    """The whole of docs/configuration.md."""
    intro, _, rest = INTRODUCTION.partition("\n\n")
    parts = [intro, "", "<!-- Generated by `uv run python -m dispatcher.settings.docs`: edit"
             " voicefleet_settings/catalogue.py, not this page. -->", "", rest.strip(), ""]
    parts += _first_settings() + [""] + _derived() + [""] + _sources() + [""]
    for section in SECTIONS:
        parts += ([section.prose.strip(), ""] if section.prose else []) + _table(section) + [""]
    parts += [CLOSING.strip()]
    return "\n".join(parts) + "\n"


def _any_case(word: str) -> str:
    """A regular expression of `word` in any case: JSON Schema's patterns (ECMA-262) have no `(?i)`."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _bounds(setting: Setting) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for key, value in (("minimum", setting.minimum), ("maximum", setting.maximum), ("exclusiveMinimum", setting.above)):
        if value is not None:
            bounds[key] = int(value) if setting.kind == INTEGER or value == int(value) else value
    return bounds


def _types(setting: Setting) -> dict[str, Any]:
    """A value's types in a file: its own JSON type, or text as the environment holds it. Text is held
    to the form only (a number's digits, a boolean's words); its bounds are the start's check."""
    if setting.kind == INTEGER:
        return {"anyOf": [{"type": "integer", **_bounds(setting)}, {"type": "string", "pattern": r"^\s*-?[0-9]+\s*$"}]}
    if setting.kind == NUMBER:
        return {"anyOf": [{"type": "number", **_bounds(setting)},
                          {"type": "string", "pattern": r"^\s*-?[0-9.]+([eE][-+]?[0-9]+)?\s*$"}]}
    if setting.kind == BOOLEAN:  # a file's true/false is written as 1/0 (dispatcher/settings/sources.py)
        words = "|".join(_any_case(w) for w in TRUE_WORDS + FALSE_WORDS)
        return {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                          {"type": "string", "pattern": rf"^\s*({words})\s*$"}]}
    if setting.kind == ENUM and setting.choices:
        return {"type": "string", "enum": list(setting.choices)}
    if setting.kind == LIST:
        item: dict[str, Any] = {"type": "string", "enum": list(setting.choices)} if setting.choices else {
            "type": ["string", "number"]}
        return {"anyOf": [{"type": "array", "items": item}, {"type": "string"}]}
    return {"type": "string"}


def _default(setting: Setting, default: str) -> Any:
    if setting.kind == INTEGER:
        return int(default)
    if setting.kind == NUMBER:
        return float(default)
    if setting.kind == BOOLEAN:
        return default.lower() in TRUE_WORDS
    return default


def _property(setting: Setting) -> dict[str, Any]:
    entry: dict[str, Any] = {**_types(setting), "description": meaning(setting).replace("\\|", "|")}
    if setting.default is not None:
        entry["default"] = _default(setting, setting.default)
    if setting.secret:
        entry["writeOnly"] = True  # a secret: from a secret store into the environment, never in the file
    if setting.aliases:
        entry["x-deprecated-aliases"] = list(setting.aliases)
    return entry


def schema() -> dict[str, Any]:
    """A JSON Schema of a `VOICEFLEET_CONFIG` file (and of an environment's voicefleet part)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/voicefleet/voicefleet/docs/reference/configuration.schema.json",
        "title": "voicefleet configuration",
        "description": "Settings by their environment variable names; docs/configuration.md says what each does.",
        "type": "object",
        "additionalProperties": False,
        "properties": {s.name: _property(s) for s in sorted(SETTINGS, key=lambda s: s.name)},
    }


def main(argv: list[str]) -> int:
    sys.stdout.write(json.dumps(schema(), indent=2, ensure_ascii=False) + "\n" if "--schema" in argv else page())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
