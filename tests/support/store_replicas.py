"""Replicas sharing one real store: each a `RedisCoordination` signed in as the stack's store user, under
a prefix of the test's own (so tests on one module-wide redis-server never see each other's keys)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.redis_server import RedisServer, redis_server


@asynccontextmanager
async def store_replicas(server: RedisServer, test_name: str, count: int = 2) -> AsyncIterator[list[RedisCoordination]]:
    prefix = f"{DEFAULT_PREFIX}{test_name[:20]}:"
    coordinations = [RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id=f"r-{n}",
                                                     prefix=prefix, timeout_seconds=5.0,
                                                     message_secret=server.message_secret))
                     for n in range(1, count + 1)]
    try:
        yield coordinations
    finally:
        for coordination in coordinations:
            await coordination.aclose()


@pytest.fixture(scope="module")
def store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the module's tests, with the stack's store user."""
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture
async def replica_pair(store_server: RedisServer,
                       request: pytest.FixtureRequest) -> AsyncIterator[list[RedisCoordination]]:
    async with store_replicas(store_server, request.node.name) as coordinations:
        yield coordinations
