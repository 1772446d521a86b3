"""The wait a cold start is told, and how it counts down: the lognormal's conditional quantile."""

from __future__ import annotations

from dispatcher.machines.base import Machine, MachineState
from dispatcher.reserve.wait import DurationEstimate
from dispatcher.sessions.ready_estimate import ReadyEstimate


def machine(state: MachineState = MachineState.STARTING, created_at: float = 1000.0) -> Machine:
    return Machine("s-1", "m-1", state, created_at=created_at)


def told(elapsed: float, launch_wait: float = 0.0) -> float | None:
    estimate = ReadyEstimate(lambda: DurationEstimate(20.0, sigma=0.4), lambda: launch_wait,
                             clock=lambda: 1000.0 + elapsed)
    return estimate.remaining(machine())


def test_a_fresh_cold_start_is_told_the_90_percent_quantile_plus_its_turn_for_a_create() -> None:
    cold = DurationEstimate(20.0, sigma=0.4)
    estimate = ReadyEstimate(lambda: cold, lambda: 2.5)
    assert estimate.before_launch() >= cold.quote() + 2.5 > estimate.before_launch() - 0.1  # tenths, up
    assert told(0.0) == ReadyEstimate(lambda: cold, lambda: 0.0).before_launch()  # at launch: the whole quote


def test_the_wait_shrinks_while_the_start_is_on_time_and_grows_once_it_runs_late() -> None:
    early = [told(t) for t in (0.0, 5.0, 10.0, 15.0)]
    assert early == sorted(early, reverse=True) and early[-1] < early[0]
    late = [told(t) for t in (40.0, 80.0, 160.0)]
    assert late == sorted(late) and late[-1] > late[0]  # a late start is likelier one of the slow tail
    assert all(t is not None and t > 0 for t in early + late + [told(10_000.0)])  # never a false "0 s"


def test_a_session_past_starting_has_nothing_left_to_wait_for() -> None:
    estimate = ReadyEstimate(lambda: DurationEstimate(20.0), lambda: 0.0)
    assert estimate.remaining(machine(MachineState.STARTED)) is None
    assert estimate.remaining(machine(MachineState.FAILED)) is None


def test_a_clock_behind_the_providers_counts_as_just_launched() -> None:
    assert told(-30.0) == told(0.0)
