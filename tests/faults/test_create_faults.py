"""Each cloud provider's own launch (dispatcher/machines/<provider>) when its create call fails with a
5xx, keeps failing, or hangs: once per provider (`fleet`: Fly, Compute Engine, ECS on moto, Modal), each
against its fake, with the fault tests' client timeouts. What the dispatcher answers its client for each
fault, and that no room is left, is test_provider_faults.py's, end to end, once per fault; a throttled
create retried, and one throttled throughout refused as `<provider>_throttled`, are the machines
contract's (tests/dispatcher/machines/test_contract.py): a create refused throughout is checked here
with 503s, whose refusal, late creates and recovery go the same way; the machine a late create makes,
removed, is tests/dispatcher/machines/test_lost_creates.py's.

A refused launch whose create may still have made its machine looks for it before it answers
(dispatcher/machines/lost_creates.py): those looks are made quick here, as test_lost_creates.py does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.base import Machines, MachinesError
from dispatcher.machines.lost_creates import LostCreates
from tests.dispatcher.machines.harness import MODAL_RETRY_HINT
from tests.dispatcher.machines.test_contract import spec
from tests.faults.fleet import Fleet

pytestmark = pytest.mark.slow  # real client timeouts against held calls

MAX_ATTEMPTS = 5  # every provider's Backoff(attempts=5): a failing create is tried at most this often
LATE = 5 * MODAL_RETRY_HINT  # seconds a late create is given to reach the fake


@pytest.fixture
async def machines(fleet: Fleet) -> AsyncIterator[Machines]:
    provider = fleet.make()
    lost: LostCreates = provider.lost  # type: ignore[attr-defined]
    lost.look_pauses = (0.05, 0.1)
    yield provider
    await provider.aclose()


async def test_a_create_that_fails_with_5xx_once_is_retried_and_makes_one_machine(
        fleet: Fleet, machines: Machines) -> None:
    fleet.fail_create(503, 1)
    s = spec()
    result = await machines.launch(s)
    assert result.created and len(fleet.received(s.session_id)) >= 2  # retried
    assert fleet.created(s.session_id) == 1


async def test_a_create_that_keeps_failing_is_refused_after_bounded_tries_and_a_retry_once_recovered_makes_one(
        fleet: Fleet, machines: Machines) -> None:
    fleet.fail_create(503, 1000)
    s = spec()
    with pytest.raises(MachinesError) as refused:
        await machines.launch(s)
    assert refused.value.reason == f"{fleet.name}_unavailable"
    assert 2 <= len(fleet.received(s.session_id)) <= MAX_ATTEMPTS  # retried, and gave up: bounded
    assert fleet.created(s.session_id) == 0
    sent = len(fleet.received(s.session_id))
    fleet.recover()
    # Nothing of the refused launch is still pending in a client: no create reaches the provider after
    # the refusal, however long it is given (several times Modal's retry hint), so no machine appears.
    await asyncio.sleep(LATE)
    assert len(fleet.received(s.session_id)) == sent and fleet.created(s.session_id) == 0
    retried = await machines.launch(s)
    again = await machines.launch(s)
    assert retried.created and not again.created and again.machine.machine_id == retried.machine.machine_id
    assert fleet.created(s.session_id) == 1


async def test_a_hanging_create_is_refused_while_the_fake_still_holds_it(fleet: Fleet, machines: Machines) -> None:
    hold = fleet.hold_create(MAX_ATTEMPTS)
    s = spec()
    try:
        with pytest.raises(MachinesError) as refused:
            await machines.launch(s)
        assert refused.value.reason == f"{fleet.name}_unavailable"
        # Refused while every create it sent is still held: the client's timeout and retry deadline
        # ended the wait, not the server; and it gave up after a bounded number of tries.
        assert fleet.fake.in_flight() >= hold.caught >= 2
        assert hold.caught == len(fleet.received(s.session_id)) <= MAX_ATTEMPTS
    finally:
        hold.release()


async def test_a_create_that_hangs_once_is_retried_and_its_late_answer_adds_no_machine(
        fleet: Fleet, machines: Machines) -> None:
    hold = fleet.hold_create(1)
    s = spec()
    try:
        result = await machines.launch(s)
        assert result.created
        # Retried (a slow answer on a busy machine may be retried again).
        assert hold.caught == 1 and len(fleet.received(s.session_id)) >= 2
    finally:
        hold.release()
    fleet.settle()  # the held create has now been served too
    assert fleet.created(s.session_id) == 1
    assert fleet.live(s.session_id) == 1
