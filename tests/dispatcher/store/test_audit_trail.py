"""The session audit trail in a real redis-server, as the AWS stack's store user writes it: its own
list under the deployment's prefix, beside the releases' history and never mixed into it."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.store.audit_trail import MemoryTrail, StoreTrail
from dispatcher.store.client import Store
from dispatcher.store.release_book import StoreReleaseBook
from tests.support.redis_server import RedisServer


async def test_the_session_trail_is_its_own_list_beside_the_releases_history(
        store: Store, redis: RedisServer, admin: Redis, prefix: str) -> None:
    sessions, releases = StoreTrail(store, "audit", "sessions"), StoreReleaseBook(store)
    await sessions.note({"action": "session.read", "session_id": "a"})
    await releases.note({"to": {"a": 100}})
    await sessions.note({"action": "session.stop", "session_id": "a"})
    assert [line["action"] for line in await sessions.history(10)] == ["session.stop", "session.read"]
    assert await releases.history(10) == [{"to": {"a": 100}}]
    assert sorted(await admin.keys(f"{prefix}*:*")) == [f"{prefix}audit:sessions", f"{prefix}releases:history"]
    assert redis.refused() == []


async def test_a_line_that_is_no_json_is_left_out(store: Store, admin: Redis, prefix: str) -> None:
    trail = StoreTrail(store, "audit", "sessions")
    await trail.note({"n": 1})
    await admin.rpush(f"{prefix}audit:sessions", "not json")
    assert await trail.history(10) == [{"n": 1}]


async def test_the_memory_trail_is_newest_first() -> None:
    trail = MemoryTrail()
    for n in range(3):
        await trail.note({"n": n})
    assert [line["n"] for line in await trail.history(2)] == [2, 1]
