"""The two measurements the reserve's sizing needs: the recent arrival rate and the cold start.

Both are pure (the caller passes the time), so the dispatcher feeds them `time.monotonic()` and
the simulator (bench/reserve_sim.py) feeds them its simulated clock: the same code is sized on
the simulator and run in production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ArrivalRate:
    """Exponentially decayed arrival rate (per second) with time constant `window_seconds`.

    Each arrival adds 1/window to a level that decays by e^(-Δt/window): a steady Poisson stream
    of rate r reads r on average, a step from r to 5r reaches 63 % of the rise after one window,
    and no list of timestamps is kept. O(1) per arrival and per reading.
    """

    window_seconds: float
    _level: float = field(default=0.0, init=False)
    _updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError("the arrival-rate window must be positive")

    def _decayed(self, now: float) -> float:
        if self._updated is None:
            return 0.0
        # A clock that steps back (it should not: monotonic) never inflates the rate.
        elapsed = max(0.0, now - self._updated)
        return self._level * math.exp(-elapsed / self.window_seconds)

    def record(self, now: float, count: int = 1) -> None:
        """`count` starts arrived at `now`."""
        self._level = self._decayed(now) + count / self.window_seconds
        self._updated = max(now, self._updated) if self._updated is not None else now

    def per_second(self, now: float) -> float:
        return self._decayed(now)


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
