"""A pace's turn given back by a call cancelled while it waited (`CreateLimit.give_back`,
dispatcher/store/given_turns.py): in one process, on a real redis-server (one replica and two) and with that
store gone (this replica's own count). The next call to ask takes the cancelled call's turn, not one after
it; a cancelled call's place in its key's queue no longer holds the key's later calls back.

The bucket's turns are 100 s apart, so what is counted never depends on how fast the test runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest

from dispatcher.phone.call_pace import pace_turn
from dispatcher.regions.pace_homes import bucket_turn
from dispatcher.store.coordination import Coordination, CreateLimit
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.dispatcher.store.test_pace_share import (  # noqa: F401 - the coordination fixture
    PER_SECOND,
    coordination,
    turns_ahead,
)
from tests.support.waiting import DEFAULT_TIMEOUT


async def test_a_turn_given_back_is_the_next_calls_not_one_after_the_last(coordination: Coordination) -> None:  # noqa: F811
    pace = coordination.create_limit("trunk:far", PER_SECOND, 1)
    assert (await pace.cold(1000.0, "a")).granted  # due now
    assert turns_ahead((await pace.cold(1000.0, "b")).wait) == 1
    assert turns_ahead((await pace.cold(1000.0, "c")).wait) == 2
    await pace.give_back("b")  # cancelled while it waited for its turn
    taken = await pace.cold(1000.0, "d")
    assert taken.granted and turns_ahead(taken.wait) == 1  # b's turn
    assert turns_ahead((await pace.cold(1000.0, "e")).wait) == 3  # then after c's, as before
    await pace.give_back("b")  # given back once: nothing more to give
    assert turns_ahead((await pace.cold(1000.0, "f")).wait) == 4


async def test_the_last_turn_given_back_steps_the_bucket_back(coordination: Coordination) -> None:  # noqa: F811
    pace = coordination.create_limit("trunk:last", PER_SECOND, 1)
    for ticket in ("a", "b", "c"):
        await pace.cold(1000.0, ticket)
    await pace.give_back("b")
    await pace.give_back("c")  # the last, and the one before it given back too
    assert turns_ahead((await pace.look()).wait) == 1
    assert turns_ahead((await pace.cold(1000.0, "d")).wait) == 1


async def test_a_keys_cancelled_calls_hold_its_later_calls_back_no_longer(coordination: Coordination) -> None:  # noqa: F811
    pace = coordination.create_limit("trunk:busy", PER_SECOND, 1)
    assert (await pace.shared("key-a", 250.0, "t0")).granted  # due now
    assert (await pace.shared("key-a", 250.0, "t1")).granted  # the next turn, 100 s away
    assert (await pace.shared("key-a", 250.0, "t2")).queued  # its turn at 200 s at the earliest
    await pace.give_back("t2", "key-a")  # its place in the key's queue
    behind = await pace.shared("key-a", 250.0, "t3")  # 200 s, not 300 s (past its wait): queued, not refused
    assert behind.queued and turns_ahead(behind.wait) == 1
    await pace.give_back("t1", "key-a")  # the key's turn due next
    again = await pace.shared("key-a", 250.0, "t3")
    assert again.granted and turns_ahead(again.wait) == 1  # t1's turn, at once


async def test_a_call_cancelled_while_it_waits_gives_its_turn_to_the_next_call_at_another_replica(
        request: pytest.FixtureRequest) -> None:
    server, prefix = request.getfixturevalue("redis"), request.getfixturevalue("prefix")
    replicas = [RedisCoordination(settings_for(server, f"r-{n}", prefix)) for n in range(2)]
    words = {"code": "trunk_paced", "what": "trunk 'far'", "setting": "SIP_CALL_MAX_WAIT_SECONDS"}
    pace = replicas[1].create_limit("trunk:far", PER_SECOND, 1)
    try:
        assert (await pace.shared("key-a", 1000.0, "a0")).granted  # due now
        assert turns_ahead((await pace.shared("key-a", 1000.0, "a1")).wait) == 1
        waiting = asyncio.create_task(pace_turn(replicas[0], "trunk:far", PER_SECOND, 1000.0, holder="key-b",
                                                **words))  # its turn 200 s away: it waits for it
        await _until(lambda: _turns_taken(pace, 3), "the waiting call's turn taken")
        queued = asyncio.create_task(pace_turn(replicas[0], "trunk:far", PER_SECOND, 1000.0, holder="key-a",
                                               **words))  # queued behind key-a's turn due next
        await _until(lambda: _queued(replicas[0], "key-a"), "key-a's next call queued")
        waiting.cancel()  # their clients gone
        queued.cancel()
        for task in (waiting, queued):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        behind = await bucket_turn(replicas[1], "trunk:far", PER_SECOND, 250.0, "key-a", "a2")
        assert behind.queued, behind  # at 200 s: no cancelled call ahead of it in its key's queue (300 s)
        following = await bucket_turn(replicas[1], "trunk:far", PER_SECOND, 1000.0, "key-c", "c0")
        assert following.granted and turns_ahead(following.wait) == 2  # the cancelled call's turn, not the next
    finally:
        for replica in replicas:
            await replica.aclose()


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEFAULT_TIMEOUT
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _turns_taken(pace: CreateLimit, count: int) -> bool:
    return turns_ahead((await pace.look()).wait) == count


async def _queued(replica: RedisCoordination, holder: str) -> bool:
    queue = replica.store.key("create-queue", "trunk:far", holder)
    return bool(await replica.store.redis.zcard(queue))
