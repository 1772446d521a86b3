"""Waiting for a machine to start where the API has no server-side wait (ECS, Compute Engine)."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.machines.base import Machine, MachineState, WaitTimeout
from dispatcher.machines.polling import poll_until_started


def machine(state: MachineState) -> Machine:
    return Machine(session_id="s1", machine_id="m1", state=state, created_at=0.0)


class Statuses:
    """A provider's answers to successive status calls: the last one repeats."""

    def __init__(self, *answers: Machine | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, session_id: str) -> Machine | None:
        assert session_id == "s1"
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


async def test_the_poll_waits_through_an_unlisted_and_a_starting_machine() -> None:
    status = Statuses(None, machine(MachineState.STARTING), machine(MachineState.STARTED))
    started = await poll_until_started(status, "s1", timeout=60.0, interval=0.001)
    assert started.state is MachineState.STARTED
    assert status.calls == 3


async def test_the_poll_answers_an_ended_machine_at_once() -> None:
    status = Statuses(machine(MachineState.ENDED))
    assert (await poll_until_started(status, "s1", timeout=60.0, interval=0.001)).state is MachineState.ENDED
    assert status.calls == 1


async def test_the_poll_gives_up_at_its_timeout_polling_at_its_interval() -> None:
    status = Statuses(machine(MachineState.STARTING))
    # An interval longer than the timeout: one sleep to the deadline, one last look, then give
    # up (the guard only stops a hang: a poll that slept its full interval would block an hour).
    with pytest.raises(WaitTimeout):
        await asyncio.wait_for(poll_until_started(status, "s1", timeout=0.05, interval=3600.0), timeout=60)
    assert 2 <= status.calls < 10  # not a busy loop
