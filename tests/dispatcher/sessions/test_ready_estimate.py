"""The wait a cold start is told, and how it counts down: about the median start of the deployment,
never growing while the start runs late, never a false "0 s"."""

from __future__ import annotations

from dispatcher.machines.base import Machine, MachineState
from dispatcher.reserve.start_times import StartTimes
from dispatcher.sessions.ready_estimate import ReadyEstimate

COLD = StartTimes.fitted(20.0, 0.4, ())


def machine(state: MachineState = MachineState.STARTING, created_at: float = 1000.0) -> Machine:
    return Machine("s-1", "m-1", state, created_at=created_at)


def told(elapsed: float, launch_wait: float = 0.0) -> float | None:
    estimate = ReadyEstimate(lambda: COLD, lambda: launch_wait, clock=lambda: 1000.0 + elapsed)
    return estimate.remaining(machine())


def test_a_fresh_cold_start_is_held_to_the_90_percent_quantile_plus_its_turn_for_a_create() -> None:
    estimate = ReadyEstimate(lambda: COLD, lambda: 2.5)
    assert estimate.before_launch() >= COLD.quote() + 2.5 > estimate.before_launch() - 0.1  # tenths, up
    assert told(0.0) is not None and abs(told(0.0) - COLD.median) < 0.1  # at launch: about the median


def test_the_wait_shrinks_while_the_start_is_on_time_and_never_grows_once_it_runs_late() -> None:
    waits = [told(t) for t in (0.0, 5.0, 10.0, 15.0, 20.0, 40.0, 80.0, 160.0, 10_000.0)]
    assert all(w is not None and w > 0 for w in waits)  # never a false "0 s"
    assert waits == sorted(waits, reverse=True) and waits[3] < waits[0]  # type: ignore[type-var]


def test_a_session_past_starting_has_nothing_left_to_wait_for() -> None:
    estimate = ReadyEstimate(lambda: COLD, lambda: 0.0)
    assert estimate.remaining(machine(MachineState.STARTED)) is None
    assert estimate.remaining(machine(MachineState.FAILED)) is None


def test_a_clock_behind_the_providers_counts_as_just_launched() -> None:
    assert told(-30.0) == told(0.0)
