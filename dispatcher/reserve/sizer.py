"""The reserve's sizing brain for the whole deployment, as the planning lease holder runs it.

It learns (arrivals into the forecast, the recent rate, the measured cold start and resume) and,
once a tick, turns the fleet's counts into a plan (dispatcher/reserve/planner.py). Everything it
has learnt is a small dict (`to_dict`/`from_dict`): the lease holder writes it to the store, and a
replica that takes the lease over after a crash or a deploy carries on from it, forecast and all,
instead of relearning a week.

Its clock is wall-clock epoch seconds (the forecast's buckets are times of day, and the state
moves between machines whose monotonic clocks mean nothing to each other). The simulator
(bench/reserve_sim.py) drives this class with its own clock: the code sized there is the code
that runs.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.reserve.demand import Demand, RecentCounts, expected_demand
from dispatcher.reserve.forecast import ArrivalForecast
from dispatcher.reserve.neighbours import NO_LEAN, Lean, Neighbour, NeighbourCover, lean, lend
from dispatcher.reserve.planner import PLAN_EVERY_SECONDS, Fleet, FleetPlan, PlannerSettings, Tiers, plan_fleet
from dispatcher.reserve.policy import ReserveSettings, utc_minute_of
from dispatcher.reserve.rates import ArrivalRate
from dispatcher.reserve.split import release_plans
from dispatcher.reserve.tally import BucketTally
from dispatcher.reserve.wait import DurationEstimate
from dispatcher.reserve.wall import due

STATE_VERSION = 1
# Spreads of log(seconds) until measured: Fargate's reported 30-90 s around ~45 s is about 0.35;
# Fly's "a few hundred ms" resumes are assumed to vary a little more.
COLD_SIGMA, RESUME_SIGMA = 0.4, 0.5
TICK_SLACK_SECONDS = 0.01  # a tick's time as summed floats may fall a hair short of a whole tick


@dataclass
class FleetSizer:
    settings: ReserveSettings
    planner: PlannerSettings
    tiers: Tiers
    forecast: ArrivalForecast = field(default_factory=ArrivalForecast)
    tally: BucketTally = field(default_factory=BucketTally)
    recent: RecentCounts = field(default_factory=RecentCounts)
    cold: DurationEstimate = field(init=False)  # launch → hello
    resume: DurationEstimate = field(init=False)  # resume call → hello again
    cover: NeighbourCover = field(default_factory=NeighbourCover)  # not saved: a new holder starts with no loan
    last_demand: Demand | None = None  # as the last plan sized with
    _demand_read_at: float = field(default=-math.inf, init=False)
    planned_at: float = field(default=math.inf, init=False)  # its last plan's time (the state carries it)
    _rate: ArrivalRate = field(init=False)
    _last_starts: deque[float] = field(init=False)  # the rate's sample, kept to be written down

    def __post_init__(self) -> None:
        self.cold = DurationEstimate(self.settings.cold_start_seconds, sigma=COLD_SIGMA)
        self.resume = DurationEstimate(self.tiers.resume_seconds if self.tiers.frozen else 1.0, sigma=RESUME_SIGMA)
        self._rate = ArrivalRate(self.settings.rate_sample)
        self._last_starts = deque(maxlen=self.settings.rate_sample)

    def arrived(self, now: float) -> None:
        """A start, at any replica (the store tells the lease holder about the others')."""
        self._rate.record(now)
        self._last_starts.append(now)
        self.recent.record(now)
        for start, count in self.tally.arrived(now):
            self.forecast.fold(start, count)

    @property
    def lead_seconds(self) -> float:
        """How far ahead the reserve is sized: a cold start, and the tick that orders it."""
        return self.cold.mean + PLAN_EVERY_SECONDS

    def demand(self, now: float) -> Demand:
        """The starts expected over the lead time (a region advertises its `rate` to the others)."""
        return expected_demand(
            self.forecast if self.planner.forecast else None,
            self.recent,
            now=now,
            lead_seconds=self.lead_seconds,
            recent_rate=self._rate.per_second(now),
            surge_horizon=self.planner.surge_horizon_seconds if self.planner.surge_seconds > 0 else 0.0,
        )

    def plan(self, now: float, fleet: Fleet, spare_launches: int, *, region: str = "",
             neighbours: Sequence[Neighbour] = ()) -> FleetPlan:
        """This tick's plan; `neighbours`: the other regions as this one (`region`) last read them."""
        demand = self._tick_demand(now)
        seen = lean(region, demand.rate, neighbours, budget_seconds=self.planner.spill_budget_seconds,
                    level=self.planner.service_level)
        loan = self.cover.update(now, seen)
        held = lend(region, demand.rate, neighbours, budget_seconds=self.planner.spill_budget_seconds,
                    level=self.planner.service_level) if self.planner.hold_for_neighbours else 0
        return self._plan_one(now, fleet, demand, self.settings, spare_launches, lean=loan, lend=held)

    def plan_releases(self, now: float, shared: Sequence[tuple[float, Fleet]], spare_launches: int, *,
                      region: str = "", neighbours: Sequence[Neighbour] = ()) -> list[FleetPlan]:
        """One plan per release with traffic, `shared` as (its share of the starts, its fleet):
        dispatcher/reserve/split.py. One release with all the traffic is planned as the deployment
        (and leans on busier neighbours); several are not lent to or by other regions."""
        if len(shared) == 1 and shared[0][0] >= 1.0:
            return [self.plan(now, shared[0][1], spare_launches, region=region, neighbours=neighbours)]
        return release_plans(shared, self._tick_demand(now), self.settings, utc_minute_of(now),
                             functools.partial(self._plan_one, now), spare_launches)

    def _plan_one(self, now: float, fleet: Fleet, demand: Demand, settings: ReserveSettings, spare_launches: int,
                  *, lean: Lean = NO_LEAN, lend: int = 0) -> FleetPlan:
        return plan_fleet(fleet, demand=demand, settings=settings, planner=self.planner, tiers=self.tiers, now=now,
                          cold_start_seconds=self.cold.mean, resume_seconds=self.resume.mean,
                          spare_launches=spare_launches, utc_minute=utc_minute_of(now), lean=lean, lend=lend)

    def _tick_demand(self, now: float) -> Demand:
        for start, count in self.tally.advance(now):
            self.forecast.fold(start, count)
        self.planned_at = now
        # The demand is read once a tick, and a plan woken within it (by a claim, a hello) reuses
        # it: read at every claim, the recent rate is read just after an arrival, where it runs high
        # (docs/reserve.md, "Planning between ticks"), and each high read launches bots kept idle.
        # A wall clock stepped back (NTP) reads again: else the read would stand until it caught up.
        if self.last_demand is None or due(now, self._demand_read_at, PLAN_EVERY_SECONDS - TICK_SLACK_SECONDS):
            self.last_demand, self._demand_read_at = self.demand(now), now
        return self.last_demand

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "forecast": self.forecast.to_dict(),
            "tally": self.tally.to_dict(),
            "recent": self.recent.to_dict(),
            "last_starts": list(self._last_starts),
            "cold_start": self.cold.to_dict(),
            "resume": self.resume.to_dict(),
            "planned_at": self.planned_at if math.isfinite(self.planned_at) else None,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], settings: ReserveSettings, planner: PlannerSettings, tiers: Tiers
    ) -> FleetSizer:
        """What another lease holder wrote; the settings are this replica's own (a deploy may
        have changed them). A state of another shape raises ValueError."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"sizer state: version {state.get('version')!r} is not {STATE_VERSION}")
        sizer = cls(settings, planner, tiers, ArrivalForecast.from_dict(_mapping(state, "forecast")),
                    BucketTally.from_dict(_mapping(state, "tally")), RecentCounts.from_dict(_mapping(state, "recent")))
        for start in _times(state.get("last_starts")):
            sizer._rate.record(start)
            sizer._last_starts.append(start)
        # An estimate never measured keeps this replica's configured start value.
        sizer.cold.restore(_mapping(state, "cold_start"))
        sizer.resume.restore(_mapping(state, "resume"))
        planned_at = state.get("planned_at")
        if isinstance(planned_at, (int, float)) and math.isfinite(planned_at):
            sizer.planned_at = float(planned_at)
        return sizer

    def advertised_demand(self, now: float, *, planning: bool) -> Demand:
        """The demand this region tells the others: now where this replica plans; else as of the
        lease holder's last plan before it saved the state this copy holds (a copy is given no
        start, so read now its rate would fall the longer ago it was loaded)."""
        return self.demand(now if planning else min(now, self.planned_at))

    def cold_quote(self, token_wait: float) -> float:
        """The wait to tell a start that launches cold: its turn for a create, then a cold start."""
        return token_wait + self.cold.quote()


def _mapping(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = state.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"sizer state: {key} must be a mapping")
    return value


def _times(value: Any) -> list[float]:
    if not isinstance(value, list) or any(isinstance(t, bool) or not isinstance(t, int | float) for t in value):
        raise ValueError("sizer state: last_starts must be a list of times")
    return sorted(float(t) for t in value)
