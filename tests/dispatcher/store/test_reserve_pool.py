"""The deployment's reserve pool (dispatcher/store/pool.py, memory.py `LocalPool`): the same
contract in one process, on a real redis-server and with the store down; and, with the store,
what several replicas share: each bot counted once, one planner at a time, a dead replica's bots
and lease gone one lease later, the planner's state kept for the next holder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.dispatcher.store.test_coordination_contract import ONE_PROCESS, REDIS, REDIS_DOWN, build
from tests.support.redis_server import RedisServer

IDLE = PoolBot("rsv-1", "idle", 1000.0, "img", ("webrtc",))
FROZEN = PoolBot("rsv-2", "frozen", 1001.0, "img", ("webrtc",))


@pytest.fixture(params=[ONE_PROCESS, REDIS, REDIS_DOWN])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(request.param, request)
    yield one
    await one.aclose()


async def test_a_replicas_bots_are_counted_with_their_state_frozen_included(coordination) -> None:
    await coordination.pool.publish(ReplicaPool(coordination.replica_id, (IDLE, FROZEN), sessions=3))
    assert await coordination.pool.views() == [ReplicaPool(coordination.replica_id, (IDLE, FROZEN), 3)]
    await coordination.pool.withdraw()
    assert await coordination.pool.views() == []


async def test_starts_are_taken_once_by_the_planner(coordination) -> None:
    await coordination.pool.arrived(1000.5, cold=True)
    await coordination.pool.arrived(1000.25, cold=False)
    assert await coordination.pool.arrivals() == [(1000.25, False), (1000.5, True)]
    assert await coordination.pool.arrivals() == []


async def test_the_planner_holds_its_lease_and_keeps_its_state(coordination) -> None:
    assert await coordination.pool.plan_lease()
    assert await coordination.pool.plan_lease()  # renewed, still ours
    await coordination.pool.save({"version": 1, "n": [1, 2]})
    assert await coordination.pool.load() == {"version": 1, "n": [1, 2]}


async def test_measured_cold_starts_are_kept_the_last_thirty_oldest_first(coordination) -> None:
    assert await coordination.pool.cold_starts() == []
    for n in range(1, 36):
        await coordination.pool.started_cold(float(n))
    assert await coordination.pool.cold_starts() == [float(n) for n in range(6, 36)]


# --- several replicas on one store ------------------------------------------------------------

@pytest.fixture
async def replicas(redis: RedisServer, prefix: str) -> AsyncIterator[list[RedisCoordination]]:
    group = [RedisCoordination(settings_for(redis, f"r-{n}", prefix, lease_seconds=1.0)) for n in range(3)]
    yield group
    for one in group:
        await one.aclose()


async def test_every_replica_sees_every_replicas_bots_once(replicas) -> None:
    a, b, _ = replicas
    await a.pool.publish(ReplicaPool("r-0", (IDLE,)))
    await b.pool.publish(ReplicaPool("r-1", (FROZEN,), sessions=2))
    for one in replicas:
        views = sorted(await one.pool.views(), key=lambda v: v.replica_id)
        assert views == [ReplicaPool("r-0", (IDLE,)), ReplicaPool("r-1", (FROZEN,), 2)]


async def test_starts_at_every_replica_reach_the_planner(replicas) -> None:
    a, b, c = replicas
    await b.pool.arrived(2000.0, cold=False)
    await c.pool.arrived(2001.0, cold=True)
    assert await a.pool.arrivals() == [(2000.0, False), (2001.0, True)]


async def test_cold_starts_measured_at_any_replica_outlive_it_for_a_new_one(redis, prefix, replicas) -> None:
    a, b, _ = replicas
    await a.pool.started_cold(9.13)
    await b.pool.started_cold(9.15)
    await a.aclose()  # the replica is gone (a restart): a new one reads what the deployment measured
    later = RedisCoordination(settings_for(redis, "r-new", prefix))
    try:
        assert await later.pool.cold_starts() == [9.13, 9.15]
    finally:
        await later.aclose()
    assert not redis.refused()  # under the prefix and with the commands the stack's user is granted


async def test_one_replica_plans_and_another_takes_over_a_lease_after_it_stops(replicas) -> None:
    a, b, c = replicas
    assert await a.pool.plan_lease()
    assert not await b.pool.plan_lease() and not await c.pool.plan_lease()
    await a.pool.save({"version": 1, "learnt": True})
    # `a` dies: it renews nothing, its pool record and its lease run out within a lease (1 s here).
    await a.pool.publish(ReplicaPool("r-0", (IDLE,)))
    await asyncio.sleep(2.2)  # the store's clock counts whole seconds
    assert await b.pool.plan_lease()
    assert not await c.pool.plan_lease()
    assert await b.pool.load() == {"version": 1, "learnt": True}
    assert await b.pool.views() == []


async def test_a_planner_that_lets_go_hands_over_at_once(replicas) -> None:
    a, b, _ = replicas
    assert await a.pool.plan_lease()
    await a.pool.let_go()
    assert await b.pool.plan_lease()
