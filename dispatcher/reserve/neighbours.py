"""Capacity that follows the sun: how many of its warm bots a region may leave to its neighbours.

A region leans only on a busier neighbour (higher advertised demand; ties by name), so two regions
never count on each other's bots; the neighbour must answer, lie within the spill budget
(`REGION_SPILL_BUDGET_MS`, round trip) and hold (idle, or booting) at least the Poisson stock its
own starts need until it refills (its own callers first). Then the stock is pooled: the neighbour and every region
that may lean on it need the Poisson stock of all their starts over its refill; what its idle bots
leave short of that, the leaners keep, each by its share of their starts. Never below the floor:
its own expected starts over the neighbour's refill (the mean flow stays home), one bot where
RESERVE_MIN_IDLE asks for any, and every RESERVE_SCHEDULE window open now.

Flaps do not thrash: a loss of cover counts at once (the target rises in the next tick), a gain
only after it has held for `SETTLE_SECONDS` (the most seen meanwhile). The other way round, a
busier neighbour in the budget that is short (its idle and booting bots below its own need: a
burst its creates cannot keep up with) gets bots held for it (`lend`, with
REGION_HOLD_FOR_NEIGHBOURS): its shortfall, shared by the regions quieter than it. The rule and its cost:
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
    refill_seconds: float  # the lead its planner sizes over: how soon a bot it lends is replaced
    warming: int = 0  # its reserve bots booting: idle within its refill

    @property
    def supply(self) -> int:
        """Bots it has for starts over its refill: its idle ones and those on their way."""
        return self.idle + self.warming


@dataclass(frozen=True)
class Lean:
    """What this region must keep itself while a neighbour covers the rest (inf: alone)."""

    keep: float = math.inf
    refill_seconds: float = 0.0  # the lender's refill


NO_LEAN = Lean()  # one region, or no neighbour to lean on


def own_need(neighbour: Neighbour, level: float) -> int:
    """The stock its own starts need until it refills, at `level`."""
    return poisson_quantile(max(0.0, neighbour.rate) * neighbour.refill_seconds, level)


def lean(here: str, rate: float, neighbours: Sequence[Neighbour], *, budget_seconds: float, level: float) -> Lean:
    """What `here` (starts/s `rate`) must keep with the best of its busier neighbours in the budget."""
    mine = (rate, here)
    best = NO_LEAN
    for lender in neighbours:
        rank = (lender.rate, lender.name)
        near = lender.round_trip_seconds is not None and lender.round_trip_seconds <= budget_seconds
        if not (lender.reachable and near and rank > mine and math.isfinite(lender.refill_seconds)):
            continue
        if lender.supply < own_need(lender, level):
            continue  # busy: it cannot cover its own callers
        # Every quieter region may lean on it, whether this one sees that region or not: the
        # group's pooled stock, less the lender's bots, is kept by the leaners by their rates.
        others = [o for o in neighbours if o is not lender and (o.rate, o.name) < rank]
        group_rate = rate + sum(max(0.0, o.rate) for o in others)
        need = poisson_quantile((max(0.0, lender.rate) + group_rate) * lender.refill_seconds, level)
        short = max(0, need - lender.supply)
        weight = rate / group_rate if group_rate > 0 else 1 / (1 + len(others))
        keep = math.ceil(short * weight)
        if keep < best.keep:
            best = Lean(keep, lender.refill_seconds)
    return best


def lend(here: str, rate: float, neighbours: Sequence[Neighbour], *, budget_seconds: float, level: float) -> int:
    """Bots `here` (starts/s `rate`) holds for busier neighbours in the budget that are short.

    A short neighbour's starts find no bot at home and spill to the nearest region with one: its
    shortfall (its own need less its idle and booting bots) is held for it. Held while it lasts,
    not only while its starts outrun its creates: a burst's first lead time leaves it a backlog
    its own launches land too late for (the simulator's figures, docs/regions.md). Each region
    quieter than it holds an equal share: one beyond the budget leaves its share uncovered rather
    than serve a session farther away than the budget allows."""
    mine = (rate, here)
    held = 0
    for short in neighbours:
        rank = (short.rate, short.name)
        near = short.round_trip_seconds is not None and short.round_trip_seconds <= budget_seconds
        if not (short.reachable and near and rank > mine and math.isfinite(short.refill_seconds)):
            continue
        lacking = own_need(short, level) - short.supply
        if lacking > 0:
            quieter = 1 + sum(1 for o in neighbours if o is not short and (o.rate, o.name) < rank)
            held += math.ceil(lacking / quieter)
    return held


def covered_target(own: int, lean: Lean, *, rate: float, keep: int) -> int:
    """The target with a neighbour's cover: what the pool leaves this region, never below the
    floor (its own starts over the lender's refill, and `keep`), never above `own`."""
    if math.isinf(lean.keep):
        return own
    floor = max(keep, math.ceil(rate * lean.refill_seconds))
    return min(own, max(floor, int(lean.keep)))


class NeighbourCover:
    """The cover with hysteresis: more kept at once, less only once it has held `settle` seconds."""

    def __init__(self, settle: float = SETTLE_SECONDS) -> None:
        self._settle = settle
        self.lean = NO_LEAN
        self._falling_since: float | None = None
        self._most = 0.0

    def update(self, now: float, seen: Lean) -> Lean:
        if seen.keep >= self.lean.keep:
            self.lean, self._falling_since = seen, None
            return self.lean
        if self._falling_since is None:
            self._falling_since, self._most = now, seen.keep
        self._most = max(self._most, seen.keep)
        if now - self._falling_since >= self._settle:
            self.lean, self._falling_since = Lean(self._most, seen.refill_seconds), None
        return self.lean
