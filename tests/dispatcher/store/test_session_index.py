"""The sessions' index (`GET /sessions`' store) alike in one process, on a real redis-server (as the
AWS stack's store user) and with that store down: newest first, paged below a position without
repeating or skipping one, per caller and for the deployment, bounded in count, its end kept."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from dispatcher.store.coordination import Coordination
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.session_index import ALL, MemorySessionIndex, StoreSessionIndex
from tests.dispatcher.store.conftest import settings_for
from tests.dispatcher.store.test_coordination_contract import ONE_PROCESS, REDIS, REDIS_DOWN, build
from tests.support.redis_server import RedisServer


@pytest.fixture(params=[ONE_PROCESS, REDIS, REDIS_DOWN])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(request.param, request)
    yield one
    await one.aclose()


def entry(n: int, caller: str, created: float) -> dict[str, object]:
    return {"session_id": f"{n:024x}", "caller": caller, "key": None, "created": created, "release": "default"}


async def pages(index, caller: str, examine: int) -> list[str]:  # type: ignore[no-untyped-def]
    seen, below = [], None
    for _ in range(100):
        page = await index.page(caller, below, examine)
        seen += [e["session_id"] for e in page.entries]
        if page.next is None:
            return seen
        below = page.next
    raise AssertionError("the pages never ended")


async def test_pages_read_every_session_once_newest_first_per_caller_and_for_all(coordination) -> None:
    now = time.time()
    for n in range(12):  # three in each millisecond: a page may stop inside one
        await coordination.session_index.opened(entry(n, "a" if n % 3 else "b", now + (n // 3) / 1000))
    every = await pages(coordination.session_index, ALL, 5)
    assert sorted(every) == sorted(f"{n:024x}" for n in range(12)) and len(every) == 12
    created = [int(n, 16) // 3 for n in every]
    assert created == sorted(created, reverse=True)
    assert sorted(await pages(coordination.session_index, "b", 2)) == [f"{n:024x}" for n in (0, 3, 6, 9)]
    assert await pages(coordination.session_index, "nobody", 5) == []


async def test_the_first_end_is_kept_and_the_first_failure_shows_over_it(coordination) -> None:
    index = coordination.session_index
    await index.opened(entry(1, "a", time.time()))
    await index.closed(f"{1:024x}", {"status": "ended", "ended": 1.0, "error": None}, failure=False)
    await index.closed(f"{1:024x}", {"status": "ended", "ended": 2.0, "error": None}, failure=False)
    assert (await index.page("a", None, 5)).entries[0]["ended"] == 1.0
    await index.closed(f"{1:024x}", {"status": "failed", "ended": 3.0, "error": "bot_error"}, failure=True)
    await index.closed(f"{1:024x}", {"status": "failed", "ended": 4.0, "error": "bot_exited"}, failure=True)
    await index.closed(f"{1:024x}", {"status": "ended", "ended": 5.0, "error": None}, failure=False)
    listed = (await index.page("a", None, 5)).entries[0]
    assert (listed["status"], listed["error"], listed["ended"]) == ("failed", "bot_error", 3.0)
    # One session's read (`GET /sessions/{id}` of an ended session) is the page's entry, its failure over its end.
    assert await index.entry(f"{1:024x}") == listed
    assert await index.entry(f"{2:024x}") is None



async def test_a_note_is_kept_beside_the_entry_and_ends_nothing(coordination) -> None:
    index = coordination.session_index
    await index.opened(entry(1, "a", time.time()))
    await index.noted(f"{1:024x}", {"pipeline_error": "bot_error"})
    await index.noted(f"{1:024x}", {"pipeline_error": "later"})
    listed = (await index.page("a", None, 5)).entries[0]
    assert (listed["pipeline_error"], "status" in listed) == ("bot_error", False)
    await index.closed(f"{1:024x}", {"status": "ended", "ended": 1.0, "error": None}, failure=False)
    listed = (await index.page("a", None, 5)).entries[0]
    assert (listed["pipeline_error"], listed["status"]) == ("bot_error", "ended")

@pytest.mark.parametrize("kind", [ONE_PROCESS, REDIS])
async def test_each_set_keeps_its_newest_entries_up_to_its_bound(kind: str, request: pytest.FixtureRequest) -> None:
    coordination = build(kind, request)
    try:
        index: MemorySessionIndex | StoreSessionIndex = MemorySessionIndex(max_entries=3)
        if isinstance(coordination, RedisCoordination):
            index = StoreSessionIndex(coordination.store, coordination.seal, max_entries=3)
        now = time.time()
        for n in range(5):
            await index.opened(entry(n, "a", now + n))
        assert await pages(index, ALL, 10) == [f"{n:024x}" for n in (4, 3, 2)]
        assert await pages(index, "a", 10) == [f"{n:024x}" for n in (4, 3, 2)]
    finally:
        await coordination.aclose()


async def test_an_entry_a_store_writer_wrote_is_not_listed(redis: RedisServer, prefix: str, admin: Redis) -> None:
    coordination = RedisCoordination(settings_for(redis, "r-a", prefix))
    try:
        index = coordination.session_index
        await index.opened(entry(1, "a", time.time()))
        await admin.set(f"{prefix}sessions:entry:{2:024x}", '{"session_id": "x", "caller": "a"}')
        await admin.zadd(f"{prefix}sessions:by:a", {f"{2:024x}": time.time() * 1000 + 5})
        assert [e["session_id"] for e in (await index.page("a", None, 10)).entries] == [f"{1:024x}"]
    finally:
        await coordination.aclose()
