"""Capacity that follows the sun: how many of its warm bots a region may leave to its neighbours.

A region leans only on a busier neighbour (higher advertised demand; ties by name), so two regions
never count on each other's bots. The neighbour must answer and lie within the spill budget
(`REGION_SPILL_BUDGET_MS`, round trip). What it can lend is its spare: its idle bots beyond the
Poisson stock its own demand needs over its refill time (its own callers first), shared evenly among
the regions that may lean on it. The region's target drops by what it may borrow, never below its
floor: its own expected starts over the neighbour's refill time (the mean flow stays home; the
neighbour covers the fluctuation above it), one bot where RESERVE_MIN_IDLE asks for any, and
every RESERVE_SCHEDULE window open now (an operator's explicit order).

Flaps do not thrash: a loss of cover counts at once (the target rises in the next tick), a gain
only after it has held for `SETTLE_SECONDS` (the least seen meanwhile). The rule and its cost:
docs/regions.md ("Capacity that follows the sun").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.reserve.poisson import poisson_quantile

SETTLE_SECONDS = 10.0  # 20 polls of the peers in a row


@dataclass(frozen=True)
class Neighbour:
    """Another region as its last `/regions/state` showed it."""

    name: str
    reachable: bool
    round_trip_seconds: float | None
    idle: int  # idle bots across its replicas
    rate: float  # its expected starts per second
    refill_seconds: float  # the wait it tells a cold start: how soon a bot it lends is replaced


@dataclass(frozen=True)
class Lean:
    """What the neighbours may lend this region now."""

    bots: int = 0
    refill_seconds: float = 0.0  # the slowest lender's refill


NO_LEAN = Lean()  # one region, or no neighbour to lean on

def spare(neighbour: Neighbour, level: float) -> int:
    """Idle bots beyond the stock its own starts need, at `level`, until it refills."""
    if not math.isfinite(neighbour.refill_seconds):
        return 0  # it cannot say when a lent bot comes back
    own = poisson_quantile(max(0.0, neighbour.rate) * neighbour.refill_seconds, level)
    return max(0, neighbour.idle - own)


def lean(here: str, rate: float, neighbours: Sequence[Neighbour], *, budget_seconds: float, level: float) -> Lean:
    """What the reachable, busier neighbours within the budget may lend `here` (starts/s `rate`)."""
    mine = (rate, here)
    bots, refill = 0, 0.0
    for lender in neighbours:
        rank = (lender.rate, lender.name)
        near = lender.round_trip_seconds is not None and lender.round_trip_seconds <= budget_seconds
        if not (lender.reachable and near and rank > mine):
            continue
        # Every quieter region may lean on it, whether this one sees that region or not.
        leaners = 1 + sum(1 for other in neighbours if other is not lender and (other.rate, other.name) < rank)
        share = spare(lender, level) // leaners
        if share > 0:
            bots += share
            refill = max(refill, lender.refill_seconds)
    return Lean(bots, refill)


def covered_target(own: int, lean: Lean, *, rate: float, keep: int) -> int:
    """The target once the neighbours' loan is taken off `own`, never below the floor (nor `keep`)."""
    if lean.bots <= 0:
        return own
    floor = max(keep, math.ceil(rate * lean.refill_seconds))
    return own - min(lean.bots, max(0, own - floor))


class NeighbourCover:
    """The loan with hysteresis: less at once, more only once it has held `settle` seconds."""

    def __init__(self, settle: float = SETTLE_SECONDS) -> None:
        self._settle = settle
        self.lean = NO_LEAN
        self._rising_since: float | None = None
        self._least = 0

    def update(self, now: float, seen: Lean) -> Lean:
        if seen.bots <= self.lean.bots:
            self.lean, self._rising_since = seen, None
            return self.lean
        if self._rising_since is None:
            self._rising_since, self._least = now, seen.bots
        self._least = min(self._least, seen.bots)
        if now - self._rising_since >= self._settle:
            self.lean, self._rising_since = Lean(self._least, seen.refill_seconds), None
        else:  # keep the loan as it is, with the refill the lenders tell now
            self.lean = Lean(self.lean.bots, seen.refill_seconds if self.lean.bots else 0.0)
        return self.lean
