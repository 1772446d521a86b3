"""Fly's list limit (1 list/s per app, burst 3) is counted once for the deployment, as its create
limit is: two replicas' providers on one real redis-server never send an app more lists than its
burst between them (each replica's own bucket let twice that through, and Fly answered 429), and
each of the deployment's apps has its own count.

Fly's fake keeps the real limit; the replicas' rate is made slow (one token every 100 s, no wait)
so nothing here depends on timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.machines.fly.provider import FlyMachines, FlySettings
from dispatcher.store.client import DEFAULT_PREFIX
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.fakes.fly import FakeFly
from tests.fakes.server import serve
from tests.support.redis_server import RedisServer, redis_server

BURST = 3
SLOW = {"FLY_LIST_RATE": "0.01", "FLY_LIST_BURST": str(BURST), "FLY_LIST_MAX_WAIT": "0"}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture
async def replicas(redis: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[list[RedisCoordination]]:
    prefix = f"{DEFAULT_PREFIX}t-{request.node.name[-40:]}:"
    pair = [RedisCoordination(settings_for(redis, name, prefix)) for name in ("r-a", "r-b")]
    yield pair
    for coordination in pair:
        await coordination.aclose()


async def listed(machines: FlyMachines) -> bool | str:
    try:
        await machines.list()
    except MachinesError as exc:
        return exc.reason
    return True


async def test_two_replicas_lists_share_each_apps_list_limit(
    fake_fly: FakeFly, replicas: list[RedisCoordination]
) -> None:
    here, there = (FlyMachines(FlySettings.from_env({**fake_fly.env, **SLOW}), c) for c in replicas)
    try:
        outcomes = [await listed((here, there)[n % 2]) for n in range(2 * BURST)]
    finally:
        await here.aclose()
        await there.aclose()
    assert outcomes == [True] * BURST + ["fly_rate_limited"] * BURST  # refused before Fly is asked
    assert fake_fly.refused_lists == 0 and len(fake_fly.list_times) == BURST


async def test_each_app_has_its_own_list_count(replicas: list[RedisCoordination]) -> None:
    with serve(FakeFly(other_apps=("voicefleet-bots-2",))) as fly:
        here, there = (FlyMachines(FlySettings.from_env({**fly.env, **SLOW}), c) for c in replicas)
        try:
            # Each list of the deployment asks both apps: the burst is each app's, not shared by the two.
            outcomes = [await listed((here, there)[n % 2]) for n in range(BURST + 1)]
        finally:
            await here.aclose()
            await there.aclose()
    assert outcomes == [True] * BURST + ["fly_rate_limited"]
    assert fly.refused_lists == 0 and len(fly.list_times) == 2 * BURST
