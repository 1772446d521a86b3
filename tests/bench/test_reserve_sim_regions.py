"""The three-region simulator's bookkeeping on short runs (its figures are benchmarks, in
docs/regions.md): every start counted once where it arrived, spill-over only with a warm bot and
a round trip later, none between separate deployments."""

from __future__ import annotations

import heapq
import math
from dataclasses import replace

import pytest

import bench.reserve_sim as cli
from bench.reserve_sim_model import WARM_CLAIM_SECONDS, GivenColdStarts, Machine
from bench.reserve_sim_providers import BY_NAME
from bench.reserve_sim_regions import ROUND_TRIPS, Region, World
from bench.reserve_sim_traffic import DAY_START_EPOCH, Day
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.sizer import FleetSizer

HOUR = 3600.0
SETTINGS = ReserveSettings(min_idle=1, buffer=0.0, max_idle=40, cold_start_seconds=40.0)


def world(mode: str, per_minute: float = 10.0, max_sessions: int | None = None, **planner: object) -> World:
    return World(mode, BY_NAME["ecs-fargate"], SETTINGS, PlannerSettings(**planner), per_minute,  # type: ignore[arg-type]
                 seed=3, seconds=HOUR, history_days=2, max_sessions=max_sessions)


@pytest.mark.parametrize("mode", ["separate", "spill", "sun"])
def test_every_start_is_warm_cold_or_refused_exactly_once_in_the_region_it_arrived_at(mode: str) -> None:
    w = world(mode, max_sessions=15)
    for result in w.run():
        assert result.arrivals > 0
        assert result.warm + result.cold + result.refused + result.refused_cap == result.arrivals
        assert len(result.time_to_ready) == result.warm + result.cold
    if mode == "separate":
        assert all(region.spilled_out == 0 for region in w.regions)


@pytest.mark.parametrize("polled", [False, True])
def test_a_spilled_start_is_ready_a_round_trip_later_than_a_claim_at_home_or_one_way_when_timed_at_its_bot(
        polled: bool) -> None:
    def run(ready_at_peer: bool) -> World:
        w = World("spill", BY_NAME["ecs-fargate"], SETTINGS, PlannerSettings(), 10.0, seed=3, seconds=HOUR,
                  history_days=2, max_sessions=15, poll_seconds=0.5 if polled else None,  # a small cap: they spill
                  ready_at_peer=ready_at_peer)
        w.run()
        return w

    heard, at_bot = run(False), run(True)
    trips = [t for region in heard.regions for t in region.spill_round_trips]
    assert trips and set(trips) <= set(ROUND_TRIPS.values())
    claims = {round(t, 6) for region in heard.regions for t in region.result.time_to_ready}
    assert any(round(WARM_CLAIM_SECONDS + trip, 6) in claims for trip in trips)
    # The same day either way; each spilled start timed at its bot half its round trip sooner.
    assert [t for region in at_bot.regions for t in region.spill_round_trips] == trips
    waited = [sum(region.result.time_to_ready) for w in (heard, at_bot) for region in w.regions]
    assert math.isclose(sum(waited[:3]) - sum(waited[3:]), sum(trips) / 2)


def test_leaning_on_busier_neighbours_keeps_fewer_idle_bots_and_a_zero_budget_leans_on_none() -> None:
    def idle_seconds(mode: str, budget: float) -> float:
        return sum(r.machine_seconds["hot"] for r in world(mode, 30.0, spill_budget_seconds=budget).run())

    spill = idle_seconds("spill", 0.1)
    assert idle_seconds("sun", 0.0) == spill  # REGION_SPILL_BUDGET_MS=0: the planners as if alone
    assert idle_seconds("sun", 0.2) < spill  # every pair within the budget


def test_regions_hold_bots_for_a_neighbour_whose_starts_outrun_its_creates() -> None:
    # Creates far below the bursts' starts: each region in turn is short, and its quieter
    # neighbours (every pair within the budget) hold its shortfall, so more starts find a warm bot.
    # One hour shows it as two did (warm starts 4324 against 2945; over two hours 6562 against 4561).
    tight = replace(BY_NAME["ecs-fargate"], create_rate=Rate(per_second=0.5, burst=2))
    settings = ReserveSettings(min_idle=1, buffer=0.0, max_idle=400, cold_start_seconds=40.0)

    def warm(mode: str) -> int:
        w = World(mode, tight, settings, PlannerSettings(spill_budget_seconds=0.2, hold_for_neighbours=True), 30.0,
                  seed=3, seconds=HOUR, history_days=2, max_sessions=None)
        return sum(r.warm for r in w.run())

    assert warm("sun") > 1.2 * warm("spill")


def test_each_region_launches_on_the_cold_starts_it_is_given_in_order_then_draws_its_own() -> None:
    # A create limit that never makes a launch wait: each cold start is then exactly the one given.
    fly = replace(BY_NAME["fly"], create_rate=Rate(1000.0, 1000))
    given = [GivenColdStarts([9.0] * 10_000, [1.25] * 10_000), GivenColdStarts([9.0] * 10_000, [2.5] * 10_000),
             GivenColdStarts([9.0] * 10_000, [3.75, 5.0])]  # ap's starts run out of theirs after two

    def run(cold_starts: list[GivenColdStarts] | None) -> World:
        w = World("sun", fly, SETTINGS, PlannerSettings(), 10.0, seed=3, seconds=HOUR / 4, history_days=0,
                  max_sessions=None, cold_starts=cold_starts)
        w.run()
        return w

    w = run(given)
    eu, us, ap = w.regions
    # A start's cold launch takes the sessions' cold starts, never the reserve's (9 s).
    assert eu.result.cold_waits and set(eu.result.cold_waits) == {1.25} and eu.result.drawn_cold_starts == 0
    assert us.result.cold_waits and set(us.result.cold_waits) == {2.5} and us.result.drawn_cold_starts == 0
    assert ap.result.cold_waits[:2] == [3.75, 5.0] and ap.result.drawn_cold_starts == ap.result.cold - 2 > 0
    assert len(set(ap.result.cold_waits[2:])) > 1  # past the two given, its own draws
    # The reserve's launches take the reserve's: its bots land 9 s after their launch.
    landed = [eu.machines[i] for i in eu.hot]
    assert landed and all(m.hello is not None and math.isclose(m.hello - m.launched, 9.0) for m in landed)
    drawn = run(None).regions[0].result
    assert len(set(drawn.cold_waits)) > 1 and drawn.drawn_cold_starts == drawn.launches


def advance(w: World, until: float) -> None:
    """The world's events up to `until` (World.run's loop, stopped there)."""
    while w.events and w.events[0][0] <= until:
        now, _, index, kind, ref = heapq.heappop(w.events)
        w.regions[index].handle(now, kind, ref)


def idle_bot(region: Region, now: float, form: str = "hot") -> None:
    """A reserve bot landing idle in `region` at `now`, hot or frozen."""
    machine = Machine(next(region.ids), "warming", now, region.image)
    region.machines[machine.machine_id] = machine
    region.count["warming"] += 1
    region.land_idle(now, machine, form)


def polled(mode: str, poll_seconds: float | None = 0.5) -> World:
    """Three regions on Fly without its create limit, their peers' polls started as World.run starts them."""
    w = World(mode, replace(BY_NAME["fly"], create_rate=Rate(1000.0, 1000)), SETTINGS, PlannerSettings(), 1.0,
              seed=3, seconds=60.0, history_days=0, max_sessions=None, poll_seconds=poll_seconds)
    for region in w.regions:
        w.push(0.0, region.index, "poll", -1)
    return w


def test_with_polls_a_start_spills_by_the_peers_last_answers_and_one_refused_there_is_asked_again_at_home() -> None:
    w = polled("spill")
    eu, us, _ = w.regions
    advance(w, 0.2)
    assert eu.seen == {1: False, 2: False}  # answered at a one-way trip, read at a round trip
    idle_bot(us, 0.3)
    assert not w.spill(eu, 0.3, 0) and len(us.hot) == 1  # landed since us answered: not seen yet
    at_once = polled("spill", None)
    idle_bot(at_once.regions[1], 0.3)
    assert at_once.spill(at_once.regions[0], 0.3, 0) and not at_once.regions[1].hot  # the state at once

    advance(w, 1.0)  # us answered its next poll (0.65 s: 0.5 s after the slowest answer, ap's) with a warm bot
    assert eu.seen[1]
    assert isinstance(eu.sizer, FleetSizer)
    counted = eu.sizer.recent.window(DAY_START_EPOCH + 1.0)[1]
    assert w.spill(eu, 1.0, 0) and eu.spill_refused == 0 and len(us.hot) == 1  # relayed: us claims when it gets there
    us.retire(us.machines[us.take(us.hot, us.hot_since)])  # gone before the start gets there (a one-way trip)
    idle_bot(eu, 1.05)
    advance(w, 1.1)  # refused at us; the refusal is back a round trip after the start (75 ms): its caller asks
    assert eu.spill_refused == 1 and eu.spilled_out == 0  # at home, where a bot landed meanwhile
    assert eu.result.hot_claims == 1 and not eu.hot
    ready = 1.0 + ROUND_TRIPS[frozenset(("eu", "us"))] + eu.claim_seconds - eu.day.arrival_times[0]
    assert math.isclose(eu.result.time_to_ready[-1], ready)
    # Counted in eu's demand once more when asked again, as the dispatcher counts it (spilled away, then launched).
    assert eu.sizer.recent.window(DAY_START_EPOCH + 1.1)[1] == counted + 1


def test_with_polls_a_peer_holding_only_frozen_bots_answers_warm_and_thaws_one_for_a_spilled_start() -> None:
    # As the dispatcher answers a poll (`Reserve.can_claim`: hot or frozen) and serves a relayed start.
    w = polled("spill")
    eu, us, _ = w.regions
    idle_bot(us, 0.1, "frozen")
    advance(w, 1.0)
    assert eu.seen[1] and not us.hot
    assert w.spill(eu, 1.0, 0)
    advance(w, 1.05)  # it reaches us a one-way trip later (37.5 ms)
    assert eu.result.frozen_claims == 1 and eu.spilled_out == 1 and eu.spill_refused == 0 and not us.frozen
    hot = 1.0 + ROUND_TRIPS[frozenset(("eu", "us"))] + eu.claim_seconds - eu.day.arrival_times[0]
    assert eu.result.time_to_ready[-1] > hot + us.redial_seconds  # a thaw, then the claim


def test_a_start_refused_for_want_of_a_warm_bot_anywhere_is_asked_again_at_home_after_its_callers_round_trip() -> None:
    fly = replace(BY_NAME["fly"], create_rate=Rate(1000.0, 1000))

    def refusing(refusal_seconds: float | None) -> World:
        return World("spill", fly, SETTINGS, PlannerSettings(), 1.0, seed=3, seconds=60.0, history_days=0,
                     max_sessions=None, refusal_seconds=refusal_seconds)

    assert not refusing(None).regions[0].spill(1.0, 0)  # no warm bot anywhere: it launches cold at once
    w = refusing(0.1)
    eu = w.regions[0]
    assert isinstance(eu.sizer, FleetSizer)
    counted = eu.sizer.recent.window(DAY_START_EPOCH + 1.0)[1]
    assert eu.spill(1.0, 0)  # refused: its caller asks again
    idle_bot(eu, 1.05)  # a reserve bot lands before it does
    advance(w, 1.2)
    assert eu.result.hot_claims == 1 and eu.result.cold == 0
    assert math.isclose(eu.result.time_to_ready[-1], 1.1 + eu.claim_seconds - eu.day.arrival_times[0])
    assert eu.sizer.recent.window(DAY_START_EPOCH + 1.2)[1] == counted  # counted once, at its arrival


def test_regions_deploy_one_after_another_when_given_a_gap_and_at_noon_at_once_without(
        monkeypatch: pytest.MonkeyPatch) -> None:
    deploys: list[tuple[str, float]] = []
    handle = Region.handle

    def noted(self: Region, now: float, kind: str, ref: int) -> None:
        if kind == "deploy":
            deploys.append((self.name, now))
        handle(self, now, kind, ref)

    monkeypatch.setattr(Region, "handle", noted)
    world("sun").run()
    assert sorted(deploys) == [("ap", HOUR / 2), ("eu", HOUR / 2), ("us", HOUR / 2)]
    deploys.clear()
    staggered = World("sun", BY_NAME["ecs-fargate"], SETTINGS, PlannerSettings(), 10.0, seed=3, seconds=HOUR,
                      history_days=2, max_sessions=None, deploy_gap_seconds=600.0)
    staggered.run()
    assert deploys == [(region.name, HOUR / 2 + 600.0 * region.index) for region in staggered.regions]
    assert all(region.image == 2 for region in staggered.regions)  # each deployed once


def test_each_regions_planner_and_polls_begin_its_head_start_before_the_first_start() -> None:
    # The fleet emulator's dispatchers plan and poll for seconds before their callers' first start.
    def first_start(head_starts: list[float] | None) -> tuple[float, float]:
        w = World("sun", replace(BY_NAME["fly"], create_rate=Rate(1000.0, 1000)), SETTINGS, PlannerSettings(), 1.0,
                  seed=3, seconds=30.0, history_days=0, max_sessions=None, poll_seconds=0.5,
                  days=[Day([0.5], [10.0], []), Day([], [], []), Day([], [], [])],
                  cold_starts=[GivenColdStarts([2.0] * 9, [2.0] * 9)] * 3, head_starts=head_starts)
        eu = w.regions[0]
        w.run()
        return eu.result.time_to_ready[0], eu.result.warm

    assert first_start(None) == (2.0, 0)  # its reserve's first bot lands at 2.0: the start goes cold
    assert first_start([3.0, 0.0, 0.0]) == (WARM_CLAIM_SECONDS, 1)  # launched at -3.0, hot at -1.0


def test_with_polls_a_planner_leans_on_its_peers_as_their_last_answers_said_not_as_they_are() -> None:
    # dispatcher/regions/capacity.py: the planner reads what the peers answered to the last poll.
    w = polled("sun")
    eu, us, _ = w.regions
    assert w.neighbours(eu) == []  # nothing answered yet: nothing to lean on
    advance(w, 0.2)
    idle_bot(us, 0.3)
    assert [(n.name, n.idle) for n in w.neighbours(eu)] == [("us", 0), ("ap", 0)]  # answered before it landed
    advance(w, 1.0)
    assert [(n.name, n.idle) for n in w.neighbours(eu)] == [("us", 1), ("ap", 0)]



@pytest.mark.parametrize("argv", [[], ["--tick-only"]])
def test_a_days_run_plans_after_every_claim_and_hello_as_the_dispatchers_do_unless_told_tick_only(
        argv: list[str]) -> None:
    args = cli.parser().parse_args(["--regions", "3", "--stack", "aws-prod", "--levels", "60", *argv])
    runs = cli.regional_runs(args, cli.build_runs(args, {}))
    assert [run.wakes for run in runs] == [not argv] * 3  # separate, spill, sun
