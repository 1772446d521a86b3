"""Counting starts into the forecast's 15-minute buckets, honestly about the time nobody watched.

The planner (one replica at a time, under a lease) calls `advance` at every tick and `arrived`
for every start. A bucket is handed to the forecast only when it was watched for most of its
length: a bucket that began before a restart, or passed while no replica held the lease, would
otherwise teach the forecast that nobody called. The part watched is scaled up to the bucket (a
bucket watched for 90 % of its time with 27 starts counts 30).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.reserve.forecast import BUCKET_SECONDS, bucket_start

# Ticks further apart than this mean nobody was watching in between (a restart, a lost lease).
MAX_GAP_SECONDS = 60.0
# A bucket watched for less than this share of its length is dropped, not scaled.
MIN_COVERAGE = 0.9


@dataclass
class BucketTally:
    _start: float | None = None  # the bucket being counted
    _count: int = 0
    _watched: float = 0.0  # seconds of it the planner was ticking through
    _last: float | None = None  # the last tick or arrival

    def arrived(self, now: float) -> list[tuple[float, float]]:
        """A start at `now` (epoch seconds); returns the buckets it finished, as `advance` does."""
        finished = self.advance(now)
        self._count += 1
        return finished

    def advance(self, now: float) -> list[tuple[float, float]]:
        """Moves the tally to `now`; returns (bucket start, starts) for each bucket watched enough."""
        if self._last is None or self._start is None:
            self._start, self._last = bucket_start(now), now
            return []
        if now <= self._last:
            return []  # a clock that did not move (or went back) watches nothing
        finished: list[tuple[float, float]] = []
        watching = now - self._last <= MAX_GAP_SECONDS
        while now >= self._start + BUCKET_SECONDS:
            end = self._start + BUCKET_SECONDS
            if watching:
                self._watched += end - max(self._last, self._start)
            if self._watched >= MIN_COVERAGE * BUCKET_SECONDS:
                finished.append((self._start, self._count * BUCKET_SECONDS / self._watched))
            self._start, self._count, self._watched = end, 0, 0.0
        if watching:
            self._watched += now - max(self._last, self._start)
        self._last = now
        return finished

    def to_dict(self) -> dict[str, Any]:
        return {"start": self._start, "count": self._count, "watched": self._watched, "last": self._last}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> BucketTally:
        values = {key: state.get(key) for key in ("start", "count", "watched", "last")}
        for key, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not math.isfinite(value) or value < 0):
                raise ValueError(f"tally state: {key} must be a non-negative number, not {value!r}")
        start, last = values["start"], values["last"]
        if (start is None) != (last is None):
            raise ValueError("tally state: start and last are both set or both unset")
        return cls(None if start is None else float(start), int(values["count"] or 0),
                   float(values["watched"] or 0.0), None if last is None else float(last))
