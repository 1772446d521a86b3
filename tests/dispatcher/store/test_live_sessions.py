"""Each replica's own running local sessions in the store (dispatcher/store/live_sessions.py), on a
real redis-server as the stack's store user: two replicas read each other's lists, and a value that
is not a list of ours (the store is written by others too) is passed over, never an error."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.store.client import Store
from dispatcher.store.live_sessions import StoreLiveSessions
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer


async def test_two_replicas_read_each_others_lists_and_pass_over_what_is_not_one(
        redis: RedisServer, prefix: str, admin: Redis) -> None:
    stores = [Store(settings_for(redis, name, prefix)) for name in ("r-a", "r-b")]
    try:
        a, b = (StoreLiveSessions(store) for store in stores)
        await a.publish([("s-1", "stable", "joined"), ("s-2", None, "starting")])
        await b.publish([("s-3", "next", "started")])
        await admin.set(prefix + "live-sessions:r-junk", "[[1, 2, 3], \"x\"]")
        await admin.set(prefix + "live-sessions:r-not-json", "{")
        read = await b.read()
        assert read["r-a"] == [("s-1", "stable", "joined"), ("s-2", None, "starting")]
        assert read["r-b"] == [("s-3", "next", "started")]
        assert read["r-junk"] == [] and "r-not-json" not in read
        assert 0 < await admin.pttl(prefix + "live-sessions:r-a") <= 10_000  # a replica gone drops out
    finally:
        for store in stores:
            await store.aclose()
