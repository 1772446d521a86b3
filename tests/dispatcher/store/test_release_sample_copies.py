"""A replica's copy of the deployment's sample (dispatcher/sessions/release_sample.py) on a real
redis-server as the stack's store user: the judge's looks run at once (every session that ends has
one, and `GET /releases` another), and each session is still copied into the judge once."""

from __future__ import annotations

import asyncio
import time

from dispatcher.releases.health import ReleaseHealth
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.store.client import Store
from dispatcher.store.release_samples import StoreReleaseSamples
from tests.support.redis_server import RedisServer


async def test_looks_at_the_sample_at_once_copy_each_session_once(store: Store, redis: RedisServer) -> None:
    samples = StoreReleaseSamples(store)
    for n in range(3):
        await samples.add("next", f"s-{n}", [time.time(), "bot error", 1.5, 0.8], keep=100, keep_seconds=3600.0)
    sample = SharedSample(ReleaseHealth(), samples)
    await asyncio.gather(*(sample.catch_up("next", "stable") for _ in range(4)))
    assert sample.health.health("next", "stable").reason == "3 of 20 sessions judged (stable: 0 of 100)"
    assert redis.refused() == []
