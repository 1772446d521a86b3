"""`POST /start` when the machines API answers 429, 5xx, or hangs, through the dispatcher app with
the fake Daily: each fault once, on one provider against its fake, every provider family (Fly, Compute
Engine, ECS on moto, Modal) among them. That each provider's own launch meets every fault alike is
test_create_faults.py's, at the provider's level (and tests/dispatcher/machines/test_lost_creates.py's
for the machine a late create makes).

What every test checks in the fake itself: the client gets a clean answer after a bounded number
of attempts (a hanging call is answered while the fake still holds it), no machine or room is left
behind (after a reaper sweep at the latest), and a retry with the same `Idempotency-Key` never
gives the session a second machine; a machine a create makes after its start was refused is removed.
Nothing here measures time: a hang is a held call, released
by the test (tests/fakes/server.py `hold`).
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import Stack
from tests.support.waiting import within

pytestmark = pytest.mark.slow  # real client timeouts against held calls

CODES = {429: "throttled", 503: "unavailable"}
# Every provider's Backoff(attempts=5): a failing create is tried at most this often per start.
MAX_ATTEMPTS = 5


def creates(stack: Stack) -> int:
    """Create calls the fake received for this test's session."""
    return len(stack.fleet.received(stack.session_id))


def on(*providers: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("fleet", providers, indirect=True)


@on("modal")
async def test_a_throttled_create_is_retried_and_starts_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(429, 1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.room in stack.daily.rooms


@on("ecs")
async def test_a_create_that_fails_with_5xx_once_is_retried_and_starts_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(503, 1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert stack.fleet.created(stack.session_id) == 1


@pytest.mark.parametrize(("fleet", "status"), [("fly", 429), ("gce", 503)], indirect=["fleet"])
async def test_a_create_that_keeps_failing_answers_503_with_retry_after_and_leaves_nothing(
    stack: Stack, status: int
) -> None:
    stack.fleet.fail_create(status, 1000)
    response = await stack.start()
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == f"{stack.fleet.name}_{CODES[status]}"
    assert 2 <= creates(stack) <= MAX_ATTEMPTS  # retried, and gave up: bounded
    assert stack.fleet.created(stack.session_id) == 0
    # Created alongside the launch, then ended in the background (Daily deletes are slow).
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)


@on("ecs")
async def test_a_retry_once_the_provider_recovers_starts_exactly_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(429, 1000)
    assert (await stack.start()).status_code == 503
    stack.fleet.recover()
    retried, again = await stack.start(), await stack.start()
    assert (retried.status_code, again.status_code) == (201, 200)
    assert retried.json()["session_id"] == again.json()["session_id"] == stack.session_id
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.room in stack.daily.rooms


@on("modal")
async def test_a_hanging_create_is_answered_503_without_waiting_for_it(stack: Stack) -> None:
    hold = stack.fleet.hold_create(MAX_ATTEMPTS)
    response = await stack.start()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == f"{stack.fleet.name}_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    # Answered while every create it sent is still held: the client's timeout and retry
    # deadline ended the wait, not the server; and it gave up after a bounded number of tries.
    assert stack.fleet.fake.in_flight() >= hold.caught >= 2
    assert hold.caught == creates(stack) <= MAX_ATTEMPTS
    hold.release()


@on("gce")
async def test_a_create_that_hangs_once_is_retried_and_the_late_answer_adds_no_machine(stack: Stack) -> None:
    hold = stack.fleet.hold_create(1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert hold.caught == 1 and creates(stack) >= 2  # retried (a slow answer on a busy machine may be retried again)
    hold.release()
    stack.fleet.settle()  # the held create has now been served too
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.fleet.live(stack.session_id) == 1


@on("fly")
async def test_a_machine_created_after_the_client_gave_up_is_removed_not_left_running(stack: Stack) -> None:
    """The start was refused: the machine a held create makes afterwards is looked for and removed
    (dispatcher/machines/lost_creates.py), not left to bill until its bot gives up."""
    hold = stack.fleet.hold_create(MAX_ATTEMPTS)
    assert (await stack.start()).status_code == 503  # the clean-up ended the room
    hold.release()  # the held creates land after the answer and its clean-up
    stack.fleet.settle()
    assert stack.fleet.created(stack.session_id) >= 1  # a held create did make a machine…
    assert await within(lambda: stack.fleet.live(stack.session_id) == 0, 120, interval=0.1) is not None  # …removed
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)


@on("gce")
async def test_a_machine_created_after_the_client_gave_up_is_removed_by_the_reaper(stack: Stack) -> None:
    hold = stack.fleet.hold_create(MAX_ATTEMPTS)
    assert (await stack.start()).status_code == 503
    hold.release()
    stack.fleet.settle()
    await stack.sweep()
    assert stack.fleet.live(stack.session_id) == 0
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)
