"""The reserve sizing the dispatcher runs today, behind the simulator's planner interface.

`--planner replica` replays a day with this instead of the fleet planner, on the same traffic and
providers: each replica sizes its own hot reserve with dispatcher/reserve/policy.py
(`reserve_size`: minimum, buffer, schedule, the burst term from the last starts' rate) and
pacing.py (`plan_reserve`), with no forecast and no frozen tier. It is the comparison the fleet
planner's figures are measured against.
"""

from __future__ import annotations

import math

from dispatcher.reserve.pacing import IdleBot, plan_reserve
from dispatcher.reserve.planner import Fleet, FleetPlan
from dispatcher.reserve.policy import ReserveSettings, reserve_size, utc_minute_of
from dispatcher.reserve.rates import ArrivalRate, ColdStartEstimate
from dispatcher.reserve.wait import DurationEstimate

IMAGE = "current"  # the simulator retires old-image bots at the deploy itself


class ReplicaPolicy:
    def __init__(self, settings: ReserveSettings) -> None:
        self.settings = settings
        self.rate = ArrivalRate(settings.rate_sample)
        self.cold_start = ColdStartEstimate(settings.cold_start_seconds)
        self.cold = _Observed(self.cold_start)
        self.resume = DurationEstimate(1.0)  # no frozen tier: never asked

    def arrived(self, now: float) -> None:
        self.rate.record(now)

    def plan(self, now: float, fleet: Fleet, spare_launches: int) -> FleetPlan:
        size = reserve_size(self.settings, active=fleet.active, arrivals_per_second=self.rate.per_second(now),
                            cold_start_seconds=self.cold_start.seconds, utc_minute=utc_minute_of(now))
        idle = [IdleBot(str(i), since, IMAGE) for i, since in enumerate(fleet.hot_since)]
        plan = plan_reserve(idle, warming=fleet.warming, size=size, now=now, image=IMAGE, settings=self.settings,
                            cold_start_seconds=self.cold_start.seconds, spare_launches=spare_launches)
        # It retires the aged and then the longest idle: always the oldest, as the simulator takes them.
        return FleetPlan(launch=plan.launch, retire_hot=len(plan.retire), ready_target=size.total,
                         hot_target=size.total)

    def cold_quote(self, token_wait: float) -> float:
        return math.nan  # the dispatcher tells a cold start nothing about its wait


class _Observed:
    """Feeds the simulator's `cold.observe` to the policy's own estimate."""

    def __init__(self, estimate: ColdStartEstimate) -> None:
        self._estimate = estimate

    def observe(self, seconds: float) -> None:
        self._estimate.observe(seconds)

