"""The simulated deployment's traffic: the measured day's starts and the weeks of starts before it.

- **Bursts**: a step to 5× the rate, starting as a Poisson process (one per 90 min on average)
  and lasting 5–20 min (uniform): ~12 % of the day carrying ~40 % of its starts. A campaign email
  or a push notification arrives all at once: the hardest case for a reserve, and no forecast
  knows when.
- **Day shape**: `flat` is the same rate all day, every day (the model the earlier figures used;
  with the same seed it replays exactly their day); `seasonal` follows the clock: 1 + 0.6 ×
  cos(2π (hour − 14) / 24) (a busy afternoon UTC at 1.6× the day's mean, a night at 0.4×), and
  weekends at half of a weekday. The level is the weekday's mean rate outside bursts.
- **Sessions**: lognormal, median 3 min, σ 0.9 (mean ≈ 4.5 min), capped at 30 min.
- **History**: the forecast is trained on the days before the measured one, drawn from the same
  model with their own bursts (a Poisson count per minute of each bucket: exactly the counts the
  arrivals would give, without drawing them one by one).
The measured day is Wednesday 2026-11-25 (UTC), so the history holds two weekends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DAY = 86400.0
DAY_START_EPOCH = 1795564800.0  # Wednesday 2026-11-25 00:00 UTC
BURST_FACTOR = 5.0
BURST_EVERY_SECONDS, BURST_MIN_SECONDS, BURST_MAX_SECONDS = 5400.0, 300.0, 1200.0
SESSION_MEDIAN_SECONDS, SESSION_SIGMA, SESSION_CAP_SECONDS = 180.0, 0.9, 1800.0
_HISTORY_STEP = 60.0


@dataclass(frozen=True)
class DayShape:
    name: str
    amplitude: float  # the time-of-day swing around the mean
    peak_hour: float  # UTC
    weekend: float  # Saturday's and Sunday's rate over a weekday's

    def share(self, epoch: float) -> float:
        """The rate at `epoch` over the weekday's mean rate."""
        hour = (epoch % DAY) / 3600.0
        weekday = (int(epoch // DAY) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        daily = 1.0 + self.amplitude * math.cos(2 * math.pi * (hour - self.peak_hour) / 24.0)
        return daily * (self.weekend if weekday >= 5 else 1.0)

    @property
    def peak_share(self) -> float:
        return (1.0 + self.amplitude) * max(1.0, self.weekend)


SHAPES = {
    "flat": DayShape("flat", 0.0, 0.0, 1.0),
    "seasonal": DayShape("seasonal", 0.6, 14.0, 0.5),
}


def bursts(draw: random.Random, seconds: float) -> list[tuple[float, float]]:
    """(start, end) of each burst in a day, in seconds from its start."""
    spans: list[tuple[float, float]] = []
    t = 0.0
    while True:
        t += draw.expovariate(1 / BURST_EVERY_SECONDS)
        if t >= seconds:
            return spans
        end = min(seconds, t + draw.uniform(BURST_MIN_SECONDS, BURST_MAX_SECONDS))
        spans.append((t, end))
        t = end


def arrivals(
    spans: list[tuple[float, float]], draw: random.Random, per_minute: float, seconds: float,
    shape: DayShape, day_start: float = DAY_START_EPOCH,
) -> Iterator[float]:
    """Start times (seconds from the day's start): a Poisson process thinned from the peak rate."""
    peak = per_minute * shape.peak_share * BURST_FACTOR / 60.0
    t, i = 0.0, 0
    while True:
        t += draw.expovariate(peak)
        if t >= seconds:
            return
        while i < len(spans) and spans[i][1] <= t:
            i += 1
        in_burst = i < len(spans) and spans[i][0] <= t
        keep = shape.share(day_start + t) / shape.peak_share * (1.0 if in_burst else 1.0 / BURST_FACTOR)
        # A flat day in a burst keeps every draw without another random number: the same stream
        # as the earlier simulator's, so a seed replays its day.
        if keep >= 1.0 or draw.random() < keep:
            yield t


def session_length(draw: random.Random) -> float:
    return min(SESSION_CAP_SECONDS, SESSION_MEDIAN_SECONDS * math.exp(draw.gauss(0.0, SESSION_SIGMA)))


@dataclass(frozen=True)
class Day:
    arrival_times: list[float]
    lengths: list[float]
    bursts: list[tuple[float, float]]


def measured_day(seed: int, per_minute: float, seconds: float, shape: DayShape,
                 spans: list[tuple[float, float]] | None = None) -> Day:
    """The day's starts and session lengths; `spans` places its 5× bursts instead of drawing them
    (the fleet emulator's short runs put one where it is measured)."""
    traffic = random.Random(f"{seed}/traffic/{per_minute}")
    if spans is None:
        spans = bursts(traffic, seconds)
    times = list(arrivals(spans, traffic, per_minute, seconds, shape))
    return Day(times, [session_length(traffic) for _ in times], spans)


def history(seed: int, per_minute: float, shape: DayShape, days: int, bucket_seconds: int,
            day_start: float = DAY_START_EPOCH) -> list[tuple[float, float]]:
    """(bucket start epoch, starts) for every bucket of the `days` days before the measured one."""
    counts: list[tuple[float, float]] = []
    for back in range(days, 0, -1):
        start = day_start - back * DAY
        spans = bursts(random.Random(f"{seed}/history/{back}/{per_minute}"), DAY)
        steps = int(DAY // _HISTORY_STEP)
        expected = np.empty(steps)
        i = 0
        for n in range(steps):
            t0 = n * _HISTORY_STEP
            while i < len(spans) and spans[i][1] <= t0:
                i += 1
            burst = sum(max(0.0, min(e, t0 + _HISTORY_STEP) - max(s, t0)) for s, e in spans[i:i + 2])
            weight = (_HISTORY_STEP - burst) + BURST_FACTOR * burst
            expected[n] = per_minute / 60.0 * shape.share(start + t0 + _HISTORY_STEP / 2) * weight
        drawn = np.random.default_rng([seed, back, round(per_minute * 1000)]).poisson(expected)
        per_bucket = int(bucket_seconds // _HISTORY_STEP)
        for b in range(steps // per_bucket):
            counts.append((start + b * bucket_seconds, float(drawn[b * per_bucket:(b + 1) * per_bucket].sum())))
    return counts
