"""The runtime settings' record, nudge, key uses and trail in a real redis-server, as the AWS stack's
store user (tests/support/redis_server.py): two replicas, a change written at one is read at the
other at its nudge, and nothing the store user may not send is sent."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from dispatcher.api.runtime_keys import RuntimeKeys
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.store.runtime_book import StoreRuntimeBook
from tests.dispatcher.store.conftest import two_replicas
from tests.support.redis_server import RedisServer

DEADLINE = 30.0


async def test_the_record_is_compared_and_written(redis: RedisServer, prefix: str, admin: Redis) -> None:
    async with two_replicas(redis, prefix) as (a, b):
        assert await a.runtime.read() is None
        assert await a.runtime.write({"version": 1, "capacity": {"sessions": 3}, "keys": {}}, None)
        assert not await b.runtime.write({"version": 2, "capacity": {}, "keys": {}}, None)  # a came first
        assert not await b.runtime.write({"version": 2, "capacity": {}, "keys": {}}, 7)
        assert await b.runtime.write({"version": 2, "capacity": {"sessions": 4}, "keys": {}}, 1)
        assert (await a.runtime.read() or {})["capacity"] == {"sessions": 4}
        await admin.hset(f"{prefix}runtime:settings", "record", "not json")
        assert await a.runtime.read() == {"version": 2}  # rewritten by the next change naming it
        assert redis.refused() == []


async def test_a_change_at_one_replica_is_applied_at_the_other_at_its_nudge(redis: RedisServer, prefix: str) -> None:
    async with two_replicas(redis, prefix) as (a, b):
        here, there = (RuntimeSettings(c.runtime, RuntimeKeys()) for c in (a, b))
        applied: list[dict[str, object]] = []
        there.listeners.append(lambda record: applied.append(record["capacity"]))
        following = asyncio.create_task(there.run())
        try:
            assert isinstance(b.runtime, StoreRuntimeBook)
            await asyncio.wait_for(b.runtime.subscribed.wait(), DEADLINE)

            def change(record: dict[str, object]) -> list[dict[str, object]]:
                record["capacity"] = {"sessions": 42}
                return [{"by": "admin-x", "action": "capacity.set", "name": "sessions", "old": None, "new": 42}]

            await here.change(change)
            deadline = time.monotonic() + DEADLINE
            while {"sessions": 42} not in applied and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert {"sessions": 42} in applied
            assert [line["new"] for line in await there.history(10)] == [42]
        finally:
            following.cancel()
        assert redis.refused() == []


async def test_key_uses_add_up_across_replicas(redis: RedisServer, prefix: str) -> None:
    async with two_replicas(redis, prefix) as (a, b):
        await a.runtime.used("acme", 100.0, 2)
        await b.runtime.used("acme", 200.0, 1)
        assert await a.runtime.uses() == {"acme": (200.0, 3)}
        assert redis.refused() == []
