"""How many idle bots to keep: the reserve's sizing policy (pure: no I/O, no clock of its own).

    floor    = the largest of RESERVE_MIN_IDLE and the schedule's windows that contain now
    stock    = clamp(floor, ceil(RESERVE_BUFFER × active), RESERVE_MAX_IDLE)   # Agones' buffer
    pipeline = floor(RESERVE_BURST × arrival rate × cold-start time)          # Little's law
    target   = min(stock + pipeline, RESERVE_MAX_IDLE)

RESERVE_MAX_IDLE is the cost ceiling (0 turns the reserve off). Why the pipeline term and why it
is rounded down: docs/reserve.md ("The policy"). Settings are validated once at start-up; a bad
value raises `SettingsError` naming the variable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.machines import aci, cerebrium, cloudrun, ecs, fly, gce, k8s, local, modal
from dispatcher.machines.cold_start import ColdStart
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_float, setting_int, setting_text

MINUTES_PER_DAY = 24 * 60

# The cold start each provider's reserve assumes until it has measured its own (seconds from the
# launch call to the bot's hello): each provider's published or measured figure
# (dispatcher/machines/<provider>/__init__.py `COLD_START`, which the simulator draws from too).
PUBLISHED_COLD_STARTS: Mapping[str, ColdStart] = {
    "local": local.COLD_START, "fly": fly.COLD_START, "gce": gce.COLD_START, "ecs": ecs.COLD_START,
    "cerebrium": cerebrium.COLD_START,
    "cloudrun": cloudrun.COLD_START,
    "modal": modal.COLD_START,
    "aci": aci.COLD_START,
    "k8s": k8s.COLD_START,
}
DEFAULT_COLD_START_SECONDS: Mapping[str, float] = {k: v.median_seconds for k, v in PUBLISHED_COLD_STARTS.items()}


def cold_start_sigma(machines: str) -> float:
    """The spread of log(seconds) a provider's cold starts are assumed to have until measured
    (`RESERVE_COLD_START_SECONDS` moves the median only)."""
    return PUBLISHED_COLD_STARTS.get(machines, local.COLD_START).sigma

# Float products such as 0.55 × 100 come out a hair above the whole number (55.00000000000001),
# others a hair below: without this slack ceil() would keep a 56th bot for a buffer of exactly 55
# and floor() would drop a whole expected arrival.
_EPSILON = 1e-9

_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})=(\d+)$")


@dataclass(frozen=True)
class ScheduleWindow:
    """A floor of `min_idle` from `start_minute` (inclusive) to `end_minute` (exclusive), UTC.

    A window whose end is before its start wraps past midnight (22:00-06:00).
    """

    start_minute: int
    end_minute: int
    min_idle: int

    def contains(self, minute: int) -> bool:
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


def parse_schedule(raw: str, name: str = "RESERVE_SCHEDULE") -> tuple[ScheduleWindow, ...]:
    """`"08:00-18:00=4,22:00-06:00=1"` → windows; empty means no schedule."""
    windows = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        match = _WINDOW.match(part.replace(" ", ""))
        if match is None:
            raise SettingsError(f"{name}: {part!r} is not a window like 08:00-18:00=4 (UTC, HH:MM-HH:MM=count)")
        start_h, start_m, end_h, end_m, count = (int(g) for g in match.groups())
        if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
            raise SettingsError(f"{name}: {part!r} has a time outside 00:00-24:00")
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        if start == end:
            raise SettingsError(f"{name}: {part!r} is an empty window (start equals end)")
        windows.append(ScheduleWindow(start, end, count))  # 24:00 is 1440: the window runs to midnight
    return tuple(windows)


def format_schedule(windows: tuple[ScheduleWindow, ...]) -> str:
    """The inverse of `parse_schedule`."""

    def hhmm(minute: int) -> str:
        return f"{minute // 60:02d}:{minute % 60:02d}"

    return ",".join(f"{hhmm(w.start_minute)}-{hhmm(w.end_minute)}={w.min_idle}" for w in windows)


def utc_minute_of(epoch_seconds: float) -> int:
    """Minute of the UTC day (0–1439) for a wall-clock time, for the schedule."""
    return int(epoch_seconds // 60) % MINUTES_PER_DAY


@dataclass(frozen=True)
class ReserveSettings:
    min_idle: int = 1  # locally too: the README's first session is a warm one with no configuration
    buffer: float = 0.1  # idle bots per active session (Agones "buffer", as a fraction)
    max_idle: int = 10  # cap on idle + warming bots; 0 turns the reserve off
    max_idle_seconds: float = 900.0  # an idle bot older than this is retired: no stale code for long
    scaledown_seconds: float = 60.0  # a surplus idle bot is retired once idle this long
    burst: float = 1.0  # factor on arrival rate × cold start; 0 drops the burst term
    rate_sample: int = 10  # recent arrivals the rate is measured over (dispatcher/reserve/rates.py)
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS["local"]  # until measured
    schedule: tuple[ScheduleWindow, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.max_idle > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str], machines: str = "local") -> ReserveSettings:
        cold_default = DEFAULT_COLD_START_SECONDS.get(machines, cls.cold_start_seconds)
        settings = cls(
            min_idle=setting_int(env, "RESERVE_MIN_IDLE"),
            buffer=setting_float(env, "RESERVE_BUFFER"),
            max_idle=setting_int(env, "RESERVE_MAX_IDLE"),
            max_idle_seconds=setting_float(env, "RESERVE_MAX_IDLE_SECONDS"),
            scaledown_seconds=setting_float(env, "RESERVE_SCALEDOWN_SECONDS"),
            burst=setting_float(env, "RESERVE_BURST"),
            rate_sample=setting_int(env, "RESERVE_RATE_SAMPLE"),
            cold_start_seconds=setting_float(env, "RESERVE_COLD_START_SECONDS", default=cold_default),
            schedule=parse_schedule(setting_text(env, "RESERVE_SCHEDULE")),
        )
        if settings.buffer > 10:
            raise SettingsError(f"RESERVE_BUFFER={settings.buffer:g} must be at most 10 (idle bots per active one)")
        floors = [settings.min_idle, *(w.min_idle for w in settings.schedule)]
        if settings.enabled and max(floors) > settings.max_idle:
            raise SettingsError(
                f"RESERVE_MAX_IDLE={settings.max_idle} is below the minimum idle count {max(floors)} "
                "(RESERVE_MIN_IDLE or a RESERVE_SCHEDULE window)"
            )
        return settings

    def to_env(self) -> dict[str, str]:
        """The RESERVE_* variables that `from_env` reads back as these settings (the stacks
        deploy the dispatcher's reserve from this, so they write no variable name of their own).
        No schedule writes no RESERVE_SCHEDULE: deployed environments carry no empty values."""
        env = {
            "RESERVE_MIN_IDLE": str(self.min_idle),
            "RESERVE_BUFFER": repr(self.buffer),
            "RESERVE_MAX_IDLE": str(self.max_idle),
            "RESERVE_MAX_IDLE_SECONDS": repr(self.max_idle_seconds),
            "RESERVE_SCALEDOWN_SECONDS": repr(self.scaledown_seconds),
            "RESERVE_BURST": repr(self.burst),
            "RESERVE_RATE_SAMPLE": str(self.rate_sample),
            "RESERVE_COLD_START_SECONDS": repr(self.cold_start_seconds),
        }
        if self.schedule:
            env["RESERVE_SCHEDULE"] = format_schedule(self.schedule)
        return env


def idle_floor(settings: ReserveSettings, utc_minute: int) -> int:
    """RESERVE_MIN_IDLE raised by every schedule window open at `utc_minute`."""
    return max([settings.min_idle, *(w.min_idle for w in settings.schedule if w.contains(utc_minute))])


def ready_stock(settings: ReserveSettings, *, active: int, utc_minute: int) -> int:
    """Idle bots to have ready: clamp(floor, ceil(buffer × active), max)."""
    if not settings.enabled:
        return 0
    buffered = math.ceil(settings.buffer * active - _EPSILON)
    return min(max(idle_floor(settings, utc_minute), buffered), settings.max_idle)


@dataclass(frozen=True)
class ReserveSize:
    ready: int  # idle bots to have ready (the stock)
    total: int  # idle plus warming bots to hold (stock + pipeline, capped)


def reserve_size(
    settings: ReserveSettings,
    *,
    active: int,
    arrivals_per_second: float,
    cold_start_seconds: float,
    utc_minute: int,
) -> ReserveSize:
    """How many bots the reserve should hold (see the module docstring)."""
    if not settings.enabled:
        return ReserveSize(0, 0)
    stock = ready_stock(settings, active=active, utc_minute=utc_minute)
    pipeline = math.floor(settings.burst * arrivals_per_second * cold_start_seconds + _EPSILON)
    return ReserveSize(ready=stock, total=min(stock + pipeline, settings.max_idle))
