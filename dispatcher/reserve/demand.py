"""How many starts the reserve must expect: the forecast, corrected by what is seen now.

The larger of two: the forecast for [now, now + lead) corrected by the last 5 minutes,
(seen + k) / (expected + k), and the recent rate of the last few starts (a burst no forecast knew
about shows in seconds; missing one costs cold starts, over-reading one a minute of idle machines).
`base_rate` is the corrected forecast alone over `surge_horizon`, so the surge stock is sized for
the next burst, not the one under way. Why each estimate and its window: docs/reserve.md ("How it
sizes").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.reserve.forecast import ArrivalForecast

CORRECTION_MINUTES = 5
CORRECTION_PRIOR = 4.0  # pseudo-starts of belief in the forecast


@dataclass
class RecentCounts:
    """Starts per minute over the last CORRECTION_MINUTES (plus the minute under way): small
    enough to keep in the store with the forecast, unlike a list of every start. The window
    begins no earlier than the first time this tally was asked: after a restart without its
    state, the minutes nobody counted are not read as minutes without starts."""

    _counts: dict[int, int] = field(default_factory=dict)  # minute number (epoch // 60) → starts
    _since: float | None = None  # when counting began

    def record(self, now: float) -> None:
        self._begin(now)
        minute = int(now // 60)
        self._counts[minute] = self._counts.get(minute, 0) + 1
        self._forget(minute)

    def window(self, now: float) -> tuple[float, int]:
        """(the window's start, starts seen in it up to `now`)."""
        since = self._begin(now)
        minute = int(now // 60)
        self._forget(minute)
        return max(since, (minute - CORRECTION_MINUTES) * 60.0), sum(self._counts.values())

    def _begin(self, now: float) -> float:
        if self._since is None or now < self._since:
            self._since = now
        return self._since

    def _forget(self, minute: int) -> None:
        # A minute after the next was counted before the wall clock stepped back (NTP): not recent.
        # (The next one holds the starts another replica, its clock a little ahead, saw already.)
        for old in [m for m in self._counts if not minute - CORRECTION_MINUTES <= m <= minute + 1]:
            del self._counts[old]

    def to_dict(self) -> dict[str, Any]:
        return {"since": self._since, "minutes": {str(minute): count for minute, count in self._counts.items()}}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> RecentCounts:
        since, minutes = state.get("since"), state.get("minutes")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)
                                  or not math.isfinite(since)):
            raise ValueError(f"recent counts: since must be a time, not {since!r}")
        if not isinstance(minutes, Mapping):
            raise ValueError("recent counts: minutes must be a mapping of minute to starts")
        counts: dict[int, int] = {}
        for minute, count in minutes.items():
            if not str(minute).isdigit() or isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"recent counts: {minute!r}: {count!r} is not a minute and a count")
            counts[int(minute)] = count
        return cls(counts, None if since is None else float(since))


def correction(seen: int, expected: float, prior: float = CORRECTION_PRIOR) -> float:
    """The factor by which the forecast was off lately (1 when it was right or nothing is known)."""
    return (seen + prior) / (max(0.0, expected) + prior)


@dataclass(frozen=True)
class Demand:
    lead_arrivals: float  # starts expected in [now, now + lead)
    rate: float  # starts per second expected now (lead_arrivals / lead)
    base_rate: float  # starts per second expected over the next surge horizon, never raised by a burst


def expected_demand(
    forecast: ArrivalForecast | None,
    recent: RecentCounts,
    *,
    now: float,
    lead_seconds: float,
    recent_rate: float,
    surge_horizon: float,
) -> Demand:
    """Expected starts over the lead time (see the module docstring). `forecast` None, or a
    forecast that never saw this time of day, leaves the recent measurements alone."""
    if lead_seconds <= 0 or not math.isfinite(lead_seconds):
        raise ValueError(f"a lead time must be positive, not {lead_seconds!r}")
    window_start, seen = recent.window(now)
    measured = recent_rate * lead_seconds
    if forecast is None or not forecast.trained(now):
        long_rate = seen / max(1.0, now - window_start)
        return Demand(measured, recent_rate, long_rate)
    factor = correction(seen, forecast.expected(window_start, now))
    ahead = forecast.expected(now, now + lead_seconds) * factor
    lead_arrivals = max(ahead, measured)
    base = forecast.expected(now, now + surge_horizon) / surge_horizon * min(1.0, factor) if surge_horizon > 0 else 0.0
    return Demand(lead_arrivals, lead_arrivals / lead_seconds, base)
