"""A real redis-server per test module (tests/support/redis_server.py), each test's keys apart.

The replicas sign in as the AWS stack's store user, with its access string: each test's keys sit
under the dispatcher's own prefix (`{voicefleet}:t-<random>:`), which is all that user may touch.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dispatcher.store.client import DEFAULT_PREFIX, Store, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


def settings_for(server: RedisServer, replica_id: str, prefix: str, **overrides: object) -> StoreSettings:
    # A generous timeout: the test machine may be busy, and a timeout here is a test failing by load.
    overrides = {"timeout_seconds": 5.0, **overrides}
    return StoreSettings(url=server.url, password=server.password, replica_id=replica_id, prefix=prefix,
                         message_secret=server.message_secret, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def prefix() -> str:
    return f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"


@pytest.fixture
async def admin(redis: RedisServer) -> AsyncIterator[Redis]:
    """The test's own view of the store, beyond what the dispatcher's user may do."""
    client = Redis.from_url(redis.admin_url, decode_responses=True)
    yield client
    await client.aclose()


LEASE_SECONDS = 60.0


@contextlib.asynccontextmanager
async def two_replicas(redis: RedisServer, prefix: str,
                       **overrides: object) -> AsyncIterator[tuple[RedisCoordination, RedisCoordination]]:
    """Two replicas' coordination on one store. Leases long enough that none runs out by itself
    however slow the machine: a test that needs one to run out moves the store's clock on
    (tests/dispatcher/store/store_time.py)."""
    overrides = {"lease_seconds": LEASE_SECONDS, **overrides}
    pair = tuple(RedisCoordination(settings_for(redis, name, prefix, **overrides)) for name in ("r-a", "r-b"))
    try:
        yield pair  # type: ignore[misc]
    finally:
        for coordination in pair:
            await coordination.aclose()


@pytest.fixture
async def replica_pair(redis: RedisServer, prefix: str) -> AsyncIterator[tuple[RedisCoordination, RedisCoordination]]:
    async with two_replicas(redis, prefix) as pair:
        yield pair


@pytest.fixture
async def store(redis: RedisServer, prefix: str) -> AsyncIterator[Store]:
    one = Store(settings_for(redis, "r-solo", prefix))
    yield one
    await one.aclose()
