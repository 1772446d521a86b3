"""The deployment's own arrivals by time of day and day of week: what the reserve should expect next.

Starts are counted per 15-minute bucket (UTC). Each finished bucket is folded into two tables:
one per time of day (96 buckets, learnt in a day) and one per time of week (672 buckets, learnt in
a week). A bucket's estimate is a running mean until it has `1 / weight` observations, then an
exponentially weighted one, so a deployment's first days count fully and a change of habits
(a campaign, a new time zone) takes over in a few days (days) or three weeks (week); until then
the planner's correction by the last 5 minutes (dispatcher/reserve/demand.py) reads the
difference. The week's table takes over from the day's as it gathers observations: weekends
differ from weekdays, but one Saturday is not yet a pattern.

The whole forecast is a small dict of numbers (`to_dict`/`from_dict`): the dispatcher keeps it in
its store so that it survives restarts and moves with the planning lease between replicas.
Pure: the caller passes wall-clock epoch seconds; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKET_SECONDS = 900
DAY_SECONDS = 86400
BUCKETS_PER_DAY = DAY_SECONDS // BUCKET_SECONDS
BUCKETS_PER_WEEK = 7 * BUCKETS_PER_DAY
# 1970-01-01 was a Thursday: shifting by three days makes bucket 0 of the week Monday 00:00 UTC.
_EPOCH_WEEKDAY = 3
# A week's bucket seen this often is trusted on its own; before that it is blended with the day's.
WEEK_TRUSTED_AFTER = 2
STATE_VERSION = 1


def bucket_start(epoch: float) -> float:
    return epoch - epoch % BUCKET_SECONDS


def day_index(epoch: float) -> int:
    return int(epoch // BUCKET_SECONDS) % BUCKETS_PER_DAY


def week_index(epoch: float) -> int:
    day = (int(epoch // DAY_SECONDS) + _EPOCH_WEEKDAY) % 7
    return day * BUCKETS_PER_DAY + day_index(epoch)


@dataclass
class _Table:
    """Per-bucket arrival counts, a running mean turning into an exponentially weighted one."""

    size: int
    weight: float
    means: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.means = self.means or [0.0] * self.size
        self.seen = self.seen or [0] * self.size

    def fold(self, index: int, count: float) -> None:
        self.seen[index] += 1
        share = max(self.weight, 1.0 / self.seen[index])
        self.means[index] += share * (count - self.means[index])


@dataclass
class ArrivalForecast:
    day_weight: float = 0.2  # about the last five days of a bucket count
    week_weight: float = 0.35  # about the last three weeks
    _day: _Table = field(init=False)
    _week: _Table = field(init=False)
    # Per-second rate by absolute bucket number: the planner asks every tick, the tables change
    # once a bucket.
    _rates: dict[int, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for name, weight in (("day_weight", self.day_weight), ("week_weight", self.week_weight)):
            if not 0.0 < weight <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], not {weight!r}")
        self._day = _Table(BUCKETS_PER_DAY, self.day_weight)
        self._week = _Table(BUCKETS_PER_WEEK, self.week_weight)

    def fold(self, start: float, arrivals: float) -> None:
        """One finished bucket (its start, epoch seconds) and the starts counted in it."""
        if arrivals < 0:
            raise ValueError(f"a bucket cannot count {arrivals!r} arrivals")
        self._day.fold(day_index(start), arrivals)
        self._week.fold(week_index(start), arrivals)
        self._rates.clear()

    def trained(self, epoch: float) -> bool:
        """Whether the bucket holding `epoch` has been seen at least once."""
        return self._day.seen[day_index(epoch)] > 0

    def bucket_arrivals(self, epoch: float) -> float:
        """Expected starts in the bucket holding `epoch` (0 where nothing was ever seen)."""
        week = week_index(epoch)
        day_mean = self._day.means[day_index(epoch)]
        trust = min(1.0, self._week.seen[week] / WEEK_TRUSTED_AFTER)
        return trust * self._week.means[week] + (1.0 - trust) * day_mean

    def rate(self, epoch: float) -> float:
        """Expected starts per second around `epoch`."""
        bucket = int(epoch // BUCKET_SECONDS)
        rate = self._rates.get(bucket)
        if rate is None:
            rate = self._rates[bucket] = self.bucket_arrivals(epoch) / BUCKET_SECONDS
        return rate

    def expected(self, start: float, end: float) -> float:
        """Expected starts in [start, end), each bucket counted for the part of it inside."""
        total, t = 0.0, start
        while t < end:
            step = min(end, bucket_start(t) + BUCKET_SECONDS) - t
            total += self.rate(t) * step
            t += step
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "bucket_seconds": BUCKET_SECONDS,
            "day_weight": self.day_weight,
            "week_weight": self.week_weight,
            "day": [round(m, 4) for m in self._day.means],
            "day_seen": list(self._day.seen),
            "week": [round(m, 4) for m in self._week.means],
            "week_seen": list(self._week.seen),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ArrivalForecast:
        """The inverse of `to_dict`; a state of another shape raises ValueError saying what is wrong."""
        if state.get("version") != STATE_VERSION or state.get("bucket_seconds") != BUCKET_SECONDS:
            raise ValueError(
                f"forecast state: version {state.get('version')!r} with {state.get('bucket_seconds')!r} s buckets "
                f"is not version {STATE_VERSION} with {BUCKET_SECONDS} s buckets"
            )
        forecast = cls(day_weight=_number(state, "day_weight"), week_weight=_number(state, "week_weight"))
        for table, name in ((forecast._day, "day"), (forecast._week, "week")):
            table.means = _numbers(state, name, table.size, float)
            table.seen = _numbers(state, f"{name}_seen", table.size, int)
        forecast._rates.clear()
        return forecast


def _number(state: Mapping[str, Any], key: str) -> float:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"forecast state: {key} must be a number, not {value!r}")
    return float(value)


def _numbers(state: Mapping[str, Any], key: str, size: int, kind: type[float] | type[int]) -> list[Any]:
    values = state.get(key)
    if not isinstance(values, list) or len(values) != size:
        raise ValueError(f"forecast state: {key} must be a list of {size} numbers")
    if any(isinstance(v, bool) or not isinstance(v, kind | int) or not 0 <= v < math.inf for v in values):
        raise ValueError(f"forecast state: {key} holds a value that is not a non-negative {kind.__name__}")
    return [kind(v) for v in values]
