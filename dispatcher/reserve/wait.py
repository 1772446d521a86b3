"""How long a machine takes to get ready: the mean the sizing needs and the wait a start is told.

Cold starts (and resumes) are skewed right: a product of placement, image pull and boot, with a
long tail. This estimate follows the log of each observed duration with exponentially weighted
mean and variance, so it gives both figures of the same lognormal:
- `mean`: what Little's law needs (bots under way = rate × mean time);
- `quote(p)`: a wait kept with probability p (0.9 by default), which the simulator counts
  (the wait the dispatcher tells a caller is dispatcher/reserve/start_times.py's).
It starts from the provider's published median and a spread (σ of the log) and moves toward what
this deployment measures; `weight` is the share of each new observation, so one machine stuck
for minutes moves it by a fraction, and no observation counts as more than three spreads away.
A small dict, to move with the planning lease.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

QUOTE_PROBABILITY = 0.9
OUTLIER_SPREADS, MIN_SPREAD = 3.0, 0.05


@dataclass
class DurationEstimate:
    median: float  # seconds, until measured
    sigma: float = 0.4  # spread of log(seconds), until measured
    weight: float = 0.1
    observations: int = 0
    _mu: float = field(init=False)
    _var: float = field(init=False)

    def __post_init__(self) -> None:
        if not (self.median > 0 and self.sigma >= 0 and 0 < self.weight <= 1):
            raise ValueError("a duration estimate needs a positive median, a spread ≥ 0 and a weight in (0, 1]")
        self._mu, self._var = math.log(self.median), self.sigma**2

    def observe(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return  # a clock glitch is not a measurement
        # A machine stuck for an hour counts as at most three spreads slow: one outlier must not
        # inflate every later quote (a Fly Machine was seen stuck in `created` for two hours).
        reach = OUTLIER_SPREADS * max(math.sqrt(self._var), MIN_SPREAD)
        delta = min(reach, max(-reach, math.log(seconds) - self._mu))
        self._mu += self.weight * delta
        self._var = (1 - self.weight) * (self._var + self.weight * delta * delta)
        self.observations += 1

    @property
    def mean(self) -> float:
        return math.exp(self._mu + self._var / 2)

    def quote(self, probability: float = QUOTE_PROBABILITY) -> float:
        """Seconds within which a machine is ready with `probability`."""
        return math.exp(self._mu + NormalDist().inv_cdf(probability) * math.sqrt(self._var))

    def to_dict(self) -> dict[str, Any]:
        return {"mu": self._mu, "var": self._var, "observations": self.observations}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Takes over what another lease holder measured (a state never measured is ignored)."""
        mu, var, observations = _finite(state.get("mu")), _finite(state.get("var")), state.get("observations")
        if mu is None or var is None or var < 0 or isinstance(observations, bool) or not isinstance(observations, int) \
                or observations < 0:
            raise ValueError(f"duration state: {dict(state)!r} is not a mean, a variance ≥ 0 and a count")
        if observations:
            self._mu, self._var, self.observations = mu, var, observations


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
