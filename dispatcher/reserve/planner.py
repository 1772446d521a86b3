"""The deployment's reserve in tiers: how many to launch, freeze, resume and retire, fleet-wide.

The replica holding the planning lease runs it once a tick. Tiers, fastest first: hot (running
idle bots), frozen (where the provider suspends a machine), cold (a new machine). The ready target
is the Poisson base stock over the cold-start lead plus a burst's surge stock, never below the
static policy's floor, less what busier neighbouring regions may lend (neighbours.py), plus what
it holds for a busier neighbour that is short (neighbours.py `lend`); the hot
target covers a freeze's round trip. How each size and each retirement rule is derived, with the
simulator's numbers: docs/reserve.md ("The fleet planner").

Pure: counts and times in, counts out. The caller picks which bots: oldest first for every action,
retirements before freezes and resumes.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dispatcher.reserve.demand import Demand
from dispatcher.reserve.neighbours import NO_LEAN, Lean, covered_target
from dispatcher.reserve.poisson import poisson_quantile
from dispatcher.reserve.policy import ReserveSettings, reserve_size
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_bool, setting_float, setting_int

PLAN_EVERY_SECONDS = 1.0  # the lease holder plans once a tick: a resume it orders lands a tick later
FROZEN_SLACK = 0.2  # frozen bots are retired only above the target by more than this share


@dataclass(frozen=True)
class PlannerSettings:
    service_level: float = 0.95  # RESERVE_SERVICE_LEVEL: P(a lead time's starts all find a bot)
    forecast: bool = True  # RESERVE_FORECAST: 0 sizes from the recent rate alone
    min_hot: int = 1  # RESERVE_MIN_HOT: running idle bots kept beside a frozen tier
    max_frozen: int = 1000  # RESERVE_MAX_FROZEN
    max_frozen_seconds: float = 86400.0  # RESERVE_MAX_FROZEN_SECONDS
    frozen_scaledown_seconds: float = 1800.0  # RESERVE_FROZEN_SCALEDOWN_SECONDS
    surge_factor: float = 5.0  # RESERVE_SURGE_FACTOR: a burst's rate over the base rate
    surge_seconds: float = 0.0  # RESERVE_SURGE_SECONDS: how long a burst the stock carries; 0 = none
    surge_horizon_seconds: float = 3600.0  # the base rate is the forecast's busiest of this far ahead
    spill_budget_seconds: float = 0.1  # REGION_SPILL_BUDGET_MS: the round trip a neighbour may cover within
    hold_for_neighbours: bool = False  # REGION_HOLD_FOR_NEIGHBOURS: hold a short busier neighbour's shortfall

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlannerSettings:
        level = setting_float(env, "RESERVE_SERVICE_LEVEL")
        if level >= 1.0:
            raise SettingsError(f"RESERVE_SERVICE_LEVEL={level:g} must be below 1 (a probability)")
        return cls(
            service_level=level,
            forecast=setting_bool(env, "RESERVE_FORECAST"),
            min_hot=setting_int(env, "RESERVE_MIN_HOT"),
            max_frozen=setting_int(env, "RESERVE_MAX_FROZEN"),
            max_frozen_seconds=setting_float(env, "RESERVE_MAX_FROZEN_SECONDS"),
            frozen_scaledown_seconds=setting_float(env, "RESERVE_FROZEN_SCALEDOWN_SECONDS"),
            surge_factor=setting_float(env, "RESERVE_SURGE_FACTOR"),
            surge_seconds=setting_float(env, "RESERVE_SURGE_SECONDS"),
            spill_budget_seconds=setting_float(env, "REGION_SPILL_BUDGET_MS") / 1000,
            hold_for_neighbours=setting_bool(env, "REGION_HOLD_FOR_NEIGHBOURS"),
        )


@dataclass(frozen=True)
class Tiers:
    """What the provider offers the reserve."""

    frozen: bool  # it can suspend an idle bot and resume it on claim
    resume_seconds: float  # a resume, until measured (0 without a frozen tier)
    create_per_second: float  # machines it can create per second, sustained (all apps together)
    suspend_seconds: float = 0.0  # a suspend, during which the bot can be claimed by nobody


@dataclass(frozen=True)
class Fleet:
    """The deployment's reserve now. Times are the caller's clock; lists are oldest first."""

    hot_since: Sequence[float]  # idle bots of the current image: when each became hot
    frozen_since: Sequence[float]  # frozen bots of the current image: when each was frozen
    warming: int = 0  # launched, not yet on the channel
    freezing: int = 0  # being suspended
    resuming: int = 0  # being resumed for the reserve (not those resumed for a claim)
    active: int = 0  # sessions


@dataclass(frozen=True)
class FleetPlan:
    launch: int = 0
    retire_hot: int = 0  # the oldest hot bots
    freeze: int = 0  # then the oldest of the hot bots left
    retire_frozen: int = 0  # the oldest frozen bots
    resume: int = 0  # then the oldest of the frozen bots left
    ready_target: int = 0
    hot_target: int = 0
    covered: int = 0  # of the target, the bots left to the neighbours (dispatcher/reserve/neighbours.py)
    lent: int = 0  # of the target, the bots held for short neighbours (neighbours.py `lend`)


def _older_than(since: Sequence[float], horizon: float) -> int:
    """How many of `since` (ascending) are at or before `horizon`."""
    return bisect_right(since, horizon)


def plan_fleet(
    fleet: Fleet,
    *,
    demand: Demand,
    settings: ReserveSettings,
    planner: PlannerSettings,
    tiers: Tiers,
    now: float,
    cold_start_seconds: float,
    resume_seconds: float,
    spare_launches: int,
    utc_minute: int,
    lean: Lean = NO_LEAN,
    lend: int = 0,
) -> FleetPlan:
    """This tick's actions (see the module docstring); `spare_launches` is `LaunchTokens.spare`."""
    if not settings.enabled:
        return FleetPlan(retire_hot=len(fleet.hot_since), retire_frozen=len(fleet.frozen_since))
    hot, frozen = fleet.hot_since, fleet.frozen_since
    stale_hot = _older_than(hot, now - settings.max_idle_seconds)
    expiring = _older_than(hot, now - (settings.max_idle_seconds - cold_start_seconds)) - stale_hot
    fresh_hot = len(hot) - stale_hot
    stale_frozen = _older_than(frozen, now - planner.max_frozen_seconds) if tiers.frozen else len(frozen)
    fresh_frozen = len(frozen) - stale_frozen

    static = reserve_size(settings, active=fleet.active, arrivals_per_second=demand.rate,
                          cold_start_seconds=cold_start_seconds, utc_minute=utc_minute)
    stock = poisson_quantile(demand.lead_arrivals, planner.service_level)
    shortfall = planner.surge_factor * demand.base_rate - tiers.create_per_second
    surge = math.ceil(max(0.0, shortfall) * planner.surge_seconds)
    own = max(static.total, stock + surge)
    # A neighbour's loan may take the target below RESERVE_MIN_IDLE (to one bot), never below a window.
    keep = max([min(1, settings.min_idle), *(w.min_idle for w in settings.schedule if w.contains(utc_minute))])
    ready_target = covered_target(own, lean, rate=demand.rate, keep=keep)
    covered = own - ready_target
    ready_target += lend
    if tiers.frozen:
        # A bot is worth freezing only if it would stay unclaimed while it is suspended and resumed.
        in_a_round_trip = demand.rate * (tiers.suspend_seconds + resume_seconds + PLAN_EVERY_SECONDS)
        hot_need = max(planner.min_hot, poisson_quantile(in_a_round_trip, planner.service_level))
        hot_target = min(ready_target, hot_need, settings.max_idle)
        frozen_target = min(planner.max_frozen, ready_target - hot_target)
    else:
        hot_target, frozen_target = min(ready_target, settings.max_idle), 0
    ready_target = hot_target + frozen_target

    frozen_position = fresh_frozen + fleet.freezing
    ready_position = fresh_hot - expiring + fleet.warming + fleet.resuming + frozen_position
    running = fresh_hot + fleet.warming + fleet.resuming + fleet.freezing
    room = max(0, settings.max_idle - running)
    launch = max(0, min(ready_target - ready_position, spare_launches, room))

    # With a frozen tier a booting bot is on its way to the frozen stock (a bot becomes hot, then
    # is frozen if hot is full); without one it is the hot stock's pipeline, as in pacing.py.
    on_the_way = fleet.resuming if tiers.frozen else fleet.warming
    hot_position = fresh_hot - expiring + on_the_way
    resume = min(max(0, hot_target - hot_position), fresh_frozen) if tiers.frozen else 0
    excess_hot = min(hot_position - hot_target, fresh_hot)
    freeze = retire_surplus = 0
    if excess_hot > 0:
        keep = max(hot_target - on_the_way, 0 if tiers.frozen else min(static.ready, ready_target))
        idle_long = _older_than(hot, now - settings.scaledown_seconds) - stale_hot
        retire_surplus = max(0, min(fresh_hot - keep, idle_long, excess_hot))
        if tiers.frozen:
            # Freezing beats retiring while the frozen tier is short: the bot is already paid for.
            freeze = min(excess_hot, max(0, frozen_target - frozen_position))
            retire_surplus = min(retire_surplus, excess_hot - freeze)
    retire_frozen = 0
    # A slack above the target: the target moves with the correction's noise, and a frozen bot
    # retired in a dip is a create spent again when it passes.
    surplus_frozen = frozen_position - resume - frozen_target - math.ceil(FROZEN_SLACK * frozen_target)
    if tiers.frozen and surplus_frozen > 0:
        frozen_long = _older_than(frozen, now - planner.frozen_scaledown_seconds) - stale_frozen
        retire_frozen = min(surplus_frozen, frozen_long, fresh_frozen - resume)
    return FleetPlan(launch=launch, retire_hot=stale_hot + retire_surplus, freeze=freeze,
                     retire_frozen=stale_frozen + max(0, retire_frozen), resume=resume,
                     ready_target=ready_target, hot_target=hot_target, covered=covered,
                     lent=min(lend, ready_target))
