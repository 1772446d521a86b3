"""The two measurements the reserve's sizing needs: the recent arrival rate and the cold start.

Both are pure (the caller passes the time), so the dispatcher feeds them `time.monotonic()` and
the simulator (bench/reserve_sim.py) feeds them its simulated clock: the same code is sized on
the simulator and run in production.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Arrivals older than this are forgotten: after a quiet night the rate reads what the last half
# hour saw, not what the evening did.
RATE_HORIZON_SECONDS = 1800.0


@dataclass
class ArrivalRate:
    """The recent arrival rate (per second), from the last `sample` arrivals.

    With a full sample: (sample − 1) / (now − the oldest of them), which is unbiased for a Poisson
    stream and falls on its own while nothing arrives. With fewer arrivals in the horizon: their
    count over the horizon. A fixed *count* of arrivals rather than a fixed time window adapts to
    the traffic: at 10 sessions/min ten arrivals span a minute, in a 5× burst they span 12 s, so
    the reserve sees a burst within seconds; at 0.2/min they span 50 min, so a chance cluster of
    three starts does not read as a burst. An exponentially decayed rate over 60 s was measured
    on bench/reserve_sim.py first: it launched a bot retired unused for one start in two at
    0.2/min, and met the 10/min goal with less margin (docs/reserve.md).
    """

    sample: int = 10
    _times: deque[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.sample < 2:
            raise ValueError("an arrival-rate sample needs at least 2 arrivals")
        self._times = deque(maxlen=self.sample)

    def record(self, now: float) -> None:
        """A start arrived at `now` (times must not go backwards: use a monotonic clock)."""
        self._times.append(now)

    def per_second(self, now: float) -> float:
        recent = [t for t in self._times if now - t < RATE_HORIZON_SECONDS]
        if len(recent) < self.sample:
            return len(recent) / RATE_HORIZON_SECONDS
        # At least a second: a sample that arrived all at once is a burst, not an infinite rate.
        # Measured to the last start if it is after `now` (another replica's clock a little ahead,
        # or the wall clock stepped back by NTP): never over a time below zero, read as one second.
        return (len(recent) - 1) / max(max(now, *recent) - recent[0], 1.0)


@dataclass
class ColdStartEstimate:
    """The provider's cold start (launch call → bot hello), an exponentially weighted mean.

    It starts at the provider's published median and moves toward what this deployment measures;
    `weight` is the share of each new observation, so an outlier of a stuck machine moves the
    estimate by at most `weight` of its excess. The mean (not a percentile) is what Little's law
    needs for the number of replacements under way.
    """

    seconds: float
    weight: float = 0.2
    observations: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.seconds <= 0 or not 0 < self.weight <= 1:
            raise ValueError("a cold-start estimate needs a positive start value and a weight in (0, 1]")

    def observe(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            return  # a clock glitch is not a measurement
        self.seconds += self.weight * (seconds - self.seconds)
        self.observations += 1

