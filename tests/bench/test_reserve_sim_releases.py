"""The releases simulator's bookkeeping on a short run with the rollout compressed into it (its
figures are benchmarks, not tested here)."""

from __future__ import annotations

from bench.reserve_sim_providers import BY_NAME
from bench.reserve_sim_releases import CANARY, STABLE, ReleasesSimulation
from bench.reserve_sim_traffic import SHAPES
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings

HOUR = 3600.0
ROLLOUT = ((0.25 * HOUR, 5), (0.5 * HOUR, 50), (0.75 * HOUR, 100))


def simulation() -> ReleasesSimulation:
    settings = ReserveSettings(min_idle=1, buffer=0.1, max_idle=40, cold_start_seconds=45.0)
    return ReleasesSimulation(BY_NAME["ecs-fargate"], settings, PlannerSettings(), 30.0, seed=3, shape=SHAPES["flat"],
                              seconds=HOUR, history_days=2, rollout=ROLLOUT)


def test_each_start_runs_its_release_and_the_canary_is_warm_from_its_first_5_percent() -> None:
    sim = simulation()
    result = sim.run()  # a start served by another release's bot raises
    assert result.warm + result.cold + result.refused + result.refused_cap == result.arrivals
    assert len(sim.ready_by_release[STABLE]) + len(sim.ready_by_release[CANARY]) == len(result.time_to_ready)
    assert sim.first_canary and sim.first_canary.count(sim.claim_seconds) > 0  # warm claims at 5 %
    early = [n for n, release in sim.release_of.items() if sim.day.arrival_times[n] < ROLLOUT[0][0]]
    assert early and all(sim.release_of[n] == STABLE for n in early)


def test_a_release_that_falls_to_0_percent_holds_no_idle_bot_afterwards() -> None:
    sim = simulation()
    sim.run()
    assert sim.weights == {STABLE: 0, CANARY: 100}
    assert not sim.pools[STABLE].hot and not sim.pools[STABLE].frozen
    assert all(m.image == CANARY for m in sim.machines.values() if m.state == "hot")
