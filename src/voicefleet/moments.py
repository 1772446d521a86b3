"""A moment as a person types it on the command line (`--since 10m`): a time ago (`30s`, `10m`, `2h`,
`1d`, or several, `1h30m`, as kubectl takes them), epoch seconds, or ISO 8601 (`2026-01-01T09:00Z`),
sent to the dispatcher as epoch seconds or as typed. One that is none of these is one line, exit 2,
before anything is sent."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

import click

from voicefleet.errors import UsageLine

_AGO = re.compile(r"(?:[0-9]+[smhd])+")  # ASCII digits: \\d takes any script's, which int() reads too
_PART = re.compile(r"([0-9]+)([smhd])")
COUNT_DIGITS = 12  # a count of seconds longer than this is some 30,000 years: refused before int() reads it
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FORMS = "a time ago (10m, 2h, 1d, 1h30m), epoch seconds (1767225600) or ISO 8601 (2026-01-01T09:00Z)"


class NotAMoment(UsageLine):
    """What was typed, and the forms taken."""


def moment(option: str, text: str, now: float | None = None) -> str:
    """`text` as the dispatcher takes it: a time ago as the epoch seconds it names; an absolute form as typed."""
    value = text.strip()
    if _AGO.fullmatch(value):
        parts = _PART.findall(value)
        # The digits counted first: past Python's 4,300 digits int() raises, past a float's range the
        # subtraction does.
        long_ago = any(len(count.lstrip("0")) > COUNT_DIGITS for count, _ in parts)
        at = -1.0 if long_ago else (time.time() if now is None else now) - sum(
            int(count) * SECONDS[unit] for count, unit in parts)
        if at < 0:
            raise NotAMoment(f"{option} {_shown(text)} is before 1970: give {FORMS}")
        return str(round(at, 3))
    try:
        if math.isfinite(float(value)):
            return value
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise NotAMoment(f"{option} {_shown(text)} is not a time: give {FORMS}") from None
    return value


def _shown(text: str) -> str:
    """What was typed, quoted and cut short: a usage line stays one line."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def moment_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: the option's value through `moment`."""
    return None if value is None else moment(param.opts[0], value)
