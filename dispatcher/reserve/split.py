"""The deployment's plan split over its releases: each release with traffic holds its own idle bots.

Each release is planned as a reserve of its own over its share of the expected starts (its weight:
dispatcher/reserve/releases.py), so each meets the service level by itself: a 5 % canary's stock is
the Poisson stock of 5 % of the starts, not 5 % of the whole stock (rounded down, that is no bot at
all, and every canary start would be cold). Rounding, decided here:
- each release with traffic keeps the deployment's whole static floor (RESERVE_MIN_IDLE, raised by
  the RESERVE_SCHEDULE windows open now) as its own RESERVE_MIN_IDLE, and at least one bot
  whenever the deployment's whole target is ≥ 1. A share of the floor (a 5 % canary's 5 % of 3
  bots, rounded up: 1) left it cold at its first starts after each claim and at every burst: the
  simulator's canary at 5 % of 10 starts/min had 12 cold starts in 139, p95 47 s; with the whole
  floor, 3 and 0.3 s (docs/releases.md, "The warm reserve per release");
- the buffer per active session counts the release's share of the sessions;
- RESERVE_MAX_IDLE caps the releases together: a release may launch into the room the others'
  running bots leave, and at least one bot.
Pure, like planner.py: shares and counts in, one plan per release out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

from dispatcher.reserve.demand import Demand
from dispatcher.reserve.planner import Fleet, FleetPlan
from dispatcher.reserve.policy import ReserveSettings, idle_floor

_EPSILON = 1e-9


def merged(fleets: Sequence[Fleet]) -> Fleet:
    """The releases' fleets as one (the deployment's whole reserve)."""
    return Fleet(sorted(t for f in fleets for t in f.hot_since), sorted(t for f in fleets for t in f.frozen_since),
                 warming=sum(f.warming for f in fleets), freezing=sum(f.freezing for f in fleets),
                 resuming=sum(f.resuming for f in fleets), active=max((f.active for f in fleets), default=0))


def running(fleet: Fleet) -> int:
    return len(fleet.hot_since) + fleet.warming + fleet.resuming + fleet.freezing


def scaled(demand: Demand, share: float) -> Demand:
    return Demand(demand.lead_arrivals * share, demand.rate * share, demand.base_rate * share)


PlanOne = Callable[[Fleet, Demand, ReserveSettings, int], FleetPlan]  # fleet, demand, settings, spare launches


def release_plans(shared: Sequence[tuple[float, Fleet]], demand: Demand, settings: ReserveSettings, utc_minute: int,
                  plan: PlanOne, spare_launches: int) -> list[FleetPlan]:
    """One plan per (share, fleet) of `shared`, in its order, each made by `plan` (the planner's
    `plan_fleet` at this tick); the smallest shares take the spare launches first (a canary needs
    a bot or two, the stable release takes the rest)."""
    fleets = [fleet for _, fleet in shared]
    whole = plan(merged(fleets), demand, settings, 0)
    static_floor = idle_floor(settings, utc_minute) if settings.enabled else 0
    plans: dict[int, FleetPlan] = {}
    spare = spare_launches
    for i in sorted(range(len(shared)), key=lambda i: shared[i][0]):
        share, fleet = shared[i]
        others = sum(running(f) for j, f in enumerate(fleets) if j != i)
        # Its RESERVE_MIN_IDLE: kept through a dip of its target (a surplus bot is retired only above it).
        floor = max(static_floor, 1) if whole.ready_target >= 1 else 0
        own = (replace(settings, min_idle=floor, schedule=(), max_idle=max(1, settings.max_idle - others))
               if settings.enabled else settings)
        plans[i] = plan(replace(fleet, active=math.ceil(share * fleet.active - _EPSILON)), scaled(demand, share),
                        own, spare)
        spare = max(0, spare - plans[i].launch)
    return [plans[i] for i in range(len(shared))]
