"""`POST /start` when Daily fails while the machine launch succeeds (a start that fails half-way):
for each cloud provider, against its fake and the fake Daily.

The room is created while the machine launches, so a Daily failure finds a machine already
started; the dispatcher must take it down again, and a retry must not end with two machines.
That machine's key is spent (Fly and ECS keep the stopped machine on record, and a same-key
retry replays it): the answer is 502 `session_setup_failed`, which asks for a new key.

What Daily's fault does to the start is decided in the dispatcher's start, the same for every provider:
each fault is checked once, on one provider, every provider family among them. What differs by
provider, the machine taken down and what a same-key retry finds of it, is checked on each of them
(`test_a_same_key_retry_after_a_room_failure_never_leaves_two_machines`).
"""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import Stack
from tests.faults.fleet import settle

pytestmark = pytest.mark.slow  # real client timeouts against held calls: minutes in all

MAX_ATTEMPTS = 5  # DailyRooms' Backoff(attempts=5)


def on(*providers: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("fleet", providers, indirect=True)


def fail_rooms(stack: Stack, status: int, times: int = 1000) -> None:
    retry_after = 0.05 if status == 429 else None
    stack.daily.fail(status, times=times, retry_after=retry_after, method="POST", path_suffix="/rooms")


def asks_for_a_new_key(response: httpx.Response, session_id: str) -> bool:
    error = response.json()["error"]
    return (
        response.status_code == 502
        and error["code"] == "session_setup_failed"
        and "new Idempotency-Key" in error["message"]
        and error["session_id"] == session_id
        and "Retry-After" not in response.headers  # the same request would not do better later
    )


@pytest.mark.parametrize(("fleet", "status"), [("fly", 429), ("modal", 503)], indirect=["fleet"])
async def test_a_room_that_cannot_be_created_stops_the_machine_and_asks_for_a_new_key(
    stack: Stack, status: int
) -> None:
    fail_rooms(stack, status)
    response = await stack.start()
    assert asks_for_a_new_key(response, stack.session_id), response.text
    assert "(daily_" in response.json()["error"]["message"]  # the reason; Daily's own words stay in the log
    assert stack.fleet.created(stack.session_id) == 1  # the launch did go through…
    assert stack.fleet.live(stack.session_id) == 0  # …and was taken down again
    assert await stack.daily.eventually(lambda: stack.room not in stack.daily.rooms)  # ended in the background


@on("gce")
async def test_a_room_create_that_fails_once_is_retried_and_the_session_starts(stack: Stack) -> None:
    fail_rooms(stack, 503, times=1)
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert stack.room in stack.daily.rooms
    assert stack.fleet.live(stack.session_id) == 1


@on("fly")
async def test_a_hanging_room_create_is_answered_without_waiting_for_it_and_stops_the_machine(
    stack: Stack,
) -> None:
    hold = stack.daily.hold(times=MAX_ATTEMPTS, method="POST", path_suffix="/rooms")
    response = await stack.start()
    assert asks_for_a_new_key(response, stack.session_id), response.text
    # Every room create is still held: the answer came from the client's own deadline.
    assert stack.daily.in_flight() >= hold.caught >= 2
    assert stack.fleet.live(stack.session_id) == 0
    hold.release()


@on("gce")  # a sweep of shared moto takes seconds
async def test_a_room_created_after_the_client_gave_up_is_ended_by_the_reaper(stack: Stack) -> None:
    hold = stack.daily.hold(times=MAX_ATTEMPTS, method="POST", path_suffix="/rooms")
    assert (await stack.start()).status_code == 502
    # The failed start ends its room in the background: let that delete be answered (it finds
    # no room yet) before the held creates land, as a Daily slower than the client would.
    assert await stack.daily.eventually(
        lambda: bool(stack.daily.calls_to("DELETE", stack.room)) and stack.daily.in_flight() == hold.caught
    )
    hold.release()
    settle(stack.daily, 10)
    assert stack.room in stack.daily.rooms  # Daily served the held create after the 503
    await stack.sweep()
    assert stack.room not in stack.daily.rooms


async def test_a_same_key_retry_after_a_room_failure_never_leaves_two_machines(stack: Stack) -> None:
    fail_rooms(stack, 503)
    assert (await stack.start()).status_code == 502
    assert stack.fleet.created(stack.session_id) == 1 and stack.fleet.live(stack.session_id) == 0  # taken down
    stack.daily.knobs.failures.clear()
    retried, again = await stack.start(), await stack.start()
    assert retried.status_code in (200, 201) and again.status_code == 200
    assert retried.json()["session_id"] == again.json()["session_id"] == stack.session_id
    assert stack.fleet.live(stack.session_id) <= 1
    # Fly and ECS replay the stopped machine (200, ended); Compute Engine has forgotten the
    # deleted VM and starts one afresh (201). Never one beside another.
    assert stack.fleet.created(stack.session_id) - stack.fleet.live(stack.session_id) <= 1


@on("fly")
async def test_a_new_key_after_a_room_failure_starts_a_session_that_can_run(stack: Stack) -> None:
    fail_rooms(stack, 503)
    assert (await stack.start()).status_code == 502
    stack.daily.knobs.failures.clear()
    stack.key = f"{stack.key}-new"
    response = await stack.start()
    assert response.status_code == 201, response.text
    assert response.json()["status"] in ("starting", "started")
    assert stack.room in stack.daily.rooms
    assert stack.fleet.live(stack.session_id) == 1
