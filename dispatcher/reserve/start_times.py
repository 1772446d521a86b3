"""How long this deployment's cold starts take, as a caller waiting for one is told.

Fitted to the last WINDOW measured starts, kept in the store (`ReservePool.started_cold`), so every
replica and a restarted one quote from the same starts: a lognormal whose centre is the median of
their logs and whose spread is their median absolute deviation, both pulled toward the seed's
while few are known (the centre as one start, the spread as two), and each start counted for at
most OBSERVATION_CAP times the quote when it ended, so a few bots that report `ready` late move it
by steps rather than at once. Median and MAD, not mean and variance:
a machine stuck for an hour among 30 starts moves neither. Before any start is measured it is the
provider's published figure (`DEFAULT_COLD_START_SECONDS`, `RESERVE_COLD_START_SECONDS`), and the
answer says so (`measured == 0`).

A start asked about while it runs is told what is left (`remaining`): the median of the fitted
starts that took at least as long as it has already waited, minus that wait. That figure shrinks
while the start is on time; once it would grow again (a late start is likelier one of the slow
tail, and with a long tail the conditional median runs ahead of the clock), it stays at its
lowest: the remaining wait never grows, so the moment told never moves later faster than time
passes, and it never reaches a false 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist, median

# A start is timed for at most this long (its `ready` report is waited for no longer), so no
# measured start is longer: a value past it in the store is not a measurement (a writer's 1e308
# overflowed the fit and stopped every replica's reserve) and is dropped wherever starts are read.
START_RECORD_SECONDS = 600.0
WINDOW = 30  # the last starts the estimate is fitted to: a new image's starts take over within 15
SEED_WEIGHT = 2.0  # the seed's spread counts as this many starts
# The seed's centre counts as one start: the first measurement moves the quote halfway (in logs)
# from the provider's figure, not all the way, so one start (a bot that reported `ready` late)
# does not set the centre on its own; by 20 starts the seed moves it by under 5 % of its log.
CENTRE_SEED_WEIGHT = 1.0
# One start counts for at most this many times the 90 % bound quoted when it ended: a late
# `ready` moves the quote by steps, and a deployment that really is slower is still learnt.
OBSERVATION_CAP = 4.0
MIN_SPREAD = 0.01  # σ of log(seconds): a bot whose starts agree to 1 %
MAD_TO_SIGMA = 1.4826  # a normal's σ over its median absolute deviation
TOLD_PROBABILITY = 0.5  # `remaining`: the likeliest wait ("about N s")
BOUND_PROBABILITY = 0.9  # `quote`: the wait a caller's patience is held to ("up to N s")
_NORMAL = NormalDist()


def is_measurement(seconds: float) -> bool:
    """A start's length as it can be measured: 0 < seconds ≤ START_RECORD_SECONDS."""
    return 0 < seconds <= START_RECORD_SECONDS  # NaN fails both


@dataclass(frozen=True)
class StartTimes:
    mu: float  # log(seconds) of the median start
    sigma: float  # spread of log(seconds)
    measured: int  # the deployment's own starts it was fitted to (0: the seed alone)
    _lowest: tuple[float, float] = field(init=False, repr=False, compare=False)  # (wait, what is left then)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lowest", self._find_lowest())

    @classmethod
    def fitted(cls, seed_seconds: float, seed_sigma: float, starts: Iterable[float]) -> StartTimes:
        """The last WINDOW of `starts` (oldest first), or the seed alone when none is usable."""
        logs = [math.log(s) for s in list(starts)[-WINDOW:] if is_measurement(s)]
        if not logs:
            return cls(math.log(seed_seconds), max(seed_sigma, MIN_SPREAD), 0)
        centre = median(logs)
        spread = MAD_TO_SIGMA * median(abs(x - centre) for x in logs)
        n = len(logs)
        variance = (SEED_WEIGHT * seed_sigma**2 + (n - 1) * spread**2) / (SEED_WEIGHT + n - 1)
        told = (CENTRE_SEED_WEIGHT * math.log(seed_seconds) + n * centre) / (CENTRE_SEED_WEIGHT + n)
        return cls(told, max(math.sqrt(variance), MIN_SPREAD), n)

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    def quote(self, probability: float = BOUND_PROBABILITY) -> float:
        """Seconds within which a start asked for now is ready with `probability`."""
        return math.exp(self.mu + _NORMAL.inv_cdf(probability) * self.sigma)

    def remaining(self, waited: float) -> float:
        """Seconds still to wait for a start not ready after `waited` seconds (never more than at
        any earlier moment of the same start, never 0)."""
        turn, lowest = self._lowest
        return lowest if waited >= turn else max(lowest, self._left(max(0.0, waited)))

    def _left(self, waited: float) -> float:
        """The conditional median of the start's length, less what was waited."""
        if waited <= 0:
            return self.median
        survived = 1.0 - _NORMAL.cdf((math.log(waited) - self.mu) / self.sigma)
        target = 1.0 - (1.0 - TOLD_PROBABILITY) * survived
        if target >= 1.0:  # so far in the tail that floats cannot tell
            return math.inf
        return max(0.0, math.exp(self.mu + _NORMAL.inv_cdf(target) * self.sigma) - waited)

    def _find_lowest(self) -> tuple[float, float]:
        """Where `_left` is lowest: a scan in σ steps of the log, then a golden-section search."""
        grid = [math.exp(self.mu + self.sigma * k / 8) for k in range(-32, 57)]
        lefts = [self._left(w) for w in grid]
        k = min(range(len(grid)), key=lefts.__getitem__)
        low, high = grid[max(0, k - 1)], grid[min(len(grid) - 1, k + 1)]
        ratio = (math.sqrt(5) - 1) / 2
        for _ in range(60):
            a, b = high - ratio * (high - low), low + ratio * (high - low)
            if self._left(a) <= self._left(b):
                high = b
            else:
                low = a
        turn = (low + high) / 2
        return turn, max(self._left(turn), 1e-3)
