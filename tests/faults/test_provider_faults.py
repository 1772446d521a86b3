"""`POST /start` when the machines API answers 429, 5xx, or hangs: for Fly, Compute Engine and
ECS (moto), each against its fake, through the dispatcher app, with the fake Daily.

What every test checks in the fake itself: the client gets a clean answer in bounded time, no
machine or room is left behind (after a reaper sweep at the latest), and a retry with the same
`Idempotency-Key` never gives the session a second machine.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import Stack
from tests.faults.fleet import HANG

CODES = {429: "throttled", 503: "unavailable"}


# The sweep lists every task in the shared moto server (all tests' sessions): seconds on ECS.
FLY_GCE = pytest.mark.parametrize("fleet", ["fly", "gce"], indirect=True)


async def test_a_throttled_create_is_retried_and_starts_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(429, 1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.room in stack.daily.rooms


async def test_a_create_that_fails_with_5xx_once_is_retried_and_starts_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(503, 1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert stack.fleet.created(stack.session_id) == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_a_create_that_keeps_failing_answers_503_with_retry_after_and_leaves_nothing(
    stack: Stack, status: int
) -> None:
    stack.fleet.fail_create(status, 1000)
    began = time.monotonic()
    response = await stack.start()
    took = time.monotonic() - began
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == f"{stack.fleet.name}_{CODES[status]}"
    assert took < stack.fleet.answer_within
    assert stack.fleet.created(stack.session_id) == 0
    # Created alongside the launch, then ended in the background (Daily deletes are slow).
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)


async def test_a_retry_once_the_provider_recovers_starts_exactly_one_machine(stack: Stack) -> None:
    stack.fleet.fail_create(429, 1000)
    assert (await stack.start()).status_code == 503
    stack.fleet.recover()
    retried, again = await stack.start(), await stack.start()
    assert (retried.status_code, again.status_code) == (201, 200)
    assert retried.json()["session_id"] == again.json()["session_id"] == stack.session_id
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.room in stack.daily.rooms


async def test_a_hanging_create_is_answered_503_within_the_retry_deadline(stack: Stack) -> None:
    stack.fleet.hang_create(stack.fleet.hang_past_answer, 10)
    began = time.monotonic()
    response = await stack.start()
    took = time.monotonic() - began
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == f"{stack.fleet.name}_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert took < stack.fleet.answer_within


async def test_a_create_that_hangs_once_is_retried_and_the_late_answer_adds_no_machine(stack: Stack) -> None:
    stack.fleet.hang_create(HANG, 1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    stack.fleet.settle()  # the held create has now been served too
    assert stack.fleet.created(stack.session_id) == 1
    assert stack.fleet.live(stack.session_id) == 1


async def test_a_machine_created_after_the_client_gave_up_is_the_one_its_retry_gets_with_its_room(
    stack: Stack,
) -> None:
    stack.fleet.hang_create(stack.fleet.hang_after_answer, 10)
    assert (await stack.start()).status_code == 503  # the clean-up ended the room
    stack.fleet.settle()
    assert stack.fleet.live(stack.session_id) == 1  # a held create landed after the 503
    created = stack.fleet.created(stack.session_id)
    retried = await stack.start()
    assert retried.status_code == 200, retried.text  # a replay of that machine…
    assert retried.json()["session_id"] == stack.session_id
    assert stack.fleet.created(stack.session_id) == created  # …not a launch beside it
    assert stack.fleet.live(stack.session_id) == 1
    assert retried.json()["room_url"].endswith(stack.room)
    assert stack.room in stack.daily.rooms  # the bot's token points at a room that exists


@FLY_GCE
async def test_a_machine_created_after_the_client_gave_up_is_removed_by_the_reaper(stack: Stack) -> None:
    stack.fleet.hang_create(stack.fleet.hang_after_answer, 10)
    assert (await stack.start()).status_code == 503
    stack.fleet.settle()
    await stack.sweep()
    assert stack.fleet.live(stack.session_id) == 0
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)
