"""A setting's value, read by the catalogue's entry alone: its default, bounds and choices are written
there once (voicefleet_settings/catalogue.py), never again at the place that reads it.

    max_sessions = setting_int(env, "MAX_CONCURRENT_SESSIONS")

`env` is the environment: the dispatcher passes its resolved one (its sources have already merged what
a size, a profile and the file set), so a derived default reaches a reader as a value; the bot host
passes its own. A setting whose default
the catalogue cannot hold (it follows another setting; its `shown` text says how) is read with
`default=`, which is refused for a setting that has one: a default is never written twice.
A bad value is one line naming the variable and what it may be."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

from voicefleet_settings.model import (
    BOOLEAN,
    ENUM,
    FALSE_WORDS,
    INTEGER,
    LIST,
    NUMBER,
    STRING,
    TRUE_WORDS,
    Kind,
    Setting,
)
from voicefleet_settings.names import by_name

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable (one line)."""


def entry(name: str, *kinds: Kind) -> Setting:
    """The catalogue's entry of `name`, which must be of one of `kinds`: a reader of the wrong type, or
    a name the catalogue lacks, is the code's mistake, caught by the first test that reads it."""
    setting = by_name().get(name)
    if setting is None or setting.name != name:
        raise LookupError(f"{name} is not in voicefleet_settings/catalogue.py: add it there with its default")
    if setting.kind not in kinds:
        raise TypeError(f"{name}: its kind in the catalogue is {setting.kind}, read as {' or '.join(kinds)}")
    return setting


def _raw(env: Mapping[str, str], setting: Setting, default: object) -> str:
    if default is not None and setting.default is not None:
        raise TypeError(f"{setting.name}: its default is the catalogue's ({setting.default}); pass none")
    return env.get(setting.name, "").strip()


def _bounded(setting: Setting, value: N, shown: str) -> N:
    name = setting.name
    if setting.above is not None and not value > setting.above:
        raise SettingsError(f"{name}={shown} must be {setting.allowed}")
    if setting.minimum is not None and value < setting.minimum:
        raise SettingsError(f"{name}={shown} must be at least {setting.minimum:g}")
    if setting.maximum is not None and value > setting.maximum:
        raise SettingsError(f"{name}={shown} must be at most {setting.maximum:g}")
    return value


def setting_int(env: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    """An integer setting: unset is its catalogue default (or `default`, for one the catalogue cannot hold)."""
    return _number(env, entry(name, INTEGER), int, "a whole number", default)


def setting_float(env: Mapping[str, str], name: str, *, default: float | None = None) -> float:
    """A number setting: finite, within its catalogue bounds."""
    return _number(env, entry(name, NUMBER), float, "a number", default)


def _number(env: Mapping[str, str], setting: Setting, parse: Callable[[str], N], what: str, default: N | None) -> N:
    """Either reader's value, parsed by `parse` (`int` or `float`: the result keeps its type)."""
    name = setting.name
    raw = _raw(env, setting, default)
    if not raw:
        return parse(setting.default) if setting.default is not None else _given(setting, default)
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {what}") from None
    if not math.isfinite(value):  # `nan` compares false with every bound, `inf` passes every minimum
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    return _bounded(setting, value, f"{value:g}" if isinstance(value, float) else str(value))


def setting_text(env: Mapping[str, str], name: str) -> str:
    """A text setting, stripped: unset (or blank) is its catalogue default, or "" when it has none."""
    setting = entry(name, STRING)
    return env.get(name, "").strip() or (setting.default or "")


def setting_bool(env: Mapping[str, str], name: str, *, default: bool | None = None) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off, any case; unset is its catalogue default (or
    `default`, for one whose default follows something the catalogue cannot hold; else false)."""
    setting = entry(name, BOOLEAN)
    raw = _raw(env, setting, default).lower()
    if not raw:
        return default if default is not None else (setting.default or "0").lower() in TRUE_WORDS
    if raw not in TRUE_WORDS + FALSE_WORDS:
        raise SettingsError(f"{name}={raw!r} is not a boolean: write {setting.allowed}")
    return raw in TRUE_WORDS


def setting_choice(env: Mapping[str, str], name: str) -> str:
    """An enum setting: one of its choices, in any case, as the catalogue spells it; unset is its
    default ("" when it has none: the reader then applies the one it follows)."""
    setting = entry(name, ENUM)
    raw = env.get(name, "").strip() or (setting.default or "")
    spelt = {choice.lower(): choice for choice in setting.choices}
    if raw and raw.lower() not in spelt:
        raise SettingsError(f"{name}={raw[:40]!r} is not one of {', '.join(setting.choices)}")
    return spelt.get(raw.lower(), "")


def setting_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A list setting: its comma-separated items, stripped, empty ones dropped; with choices, each
    item one of them (in any case, as the catalogue spells it), and each once."""
    setting = entry(name, LIST)
    raw = env.get(name, "").strip() or (setting.default or "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not setting.choices:
        return tuple(items)
    spelt = {choice.lower(): choice for choice in setting.choices}
    for item in items:
        if item.lower() not in spelt:
            raise SettingsError(f"{name}: {item.lower()[:40]!r} is not one of {', '.join(setting.choices)}")
    return tuple(dict.fromkeys(spelt[item.lower()] for item in items))


def _given(setting: Setting, default: N | None) -> N:
    if default is None:
        raise TypeError(f"{setting.name} has no default in the catalogue: pass the one it follows as default=")
    return default
