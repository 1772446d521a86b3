"""The start lease: one launch per keyed session across replicas, against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.store.leases import Leases
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.starts import StartBusy, StartLeases
from tests.dispatcher.store.conftest import LEASE_SECONDS
from tests.dispatcher.store.store_time import Sleeps


async def test_the_same_session_started_at_two_replicas_at_once_launches_once(replica_pair):
    a, b = replica_pair
    launched: list[str] = []
    inside = 0
    most_inside = 0

    async def start(coordination: RedisCoordination, session_id: str) -> None:
        nonlocal inside, most_inside
        async with coordination.starts.held(session_id, wait_seconds=30):
            inside += 1
            most_inside = max(most_inside, inside)
            if session_id not in launched:  # the provider lookup a replay makes
                await asyncio.sleep(0)  # a launch awaits the provider: another start may run now
                launched.append(session_id)
            inside -= 1

    for n in range(100):
        await asyncio.gather(start(a, f"s{n}"), start(b, f"s{n}"))
    assert len(launched) == 100
    assert most_inside == 1, "two replicas were inside one session's start at once"


async def test_a_waiting_start_gives_up_with_start_busy_after_its_wait(replica_pair):
    a, b = replica_pair
    async with a.starts.held("s", wait_seconds=1):
        with pytest.raises(StartBusy):
            async with b.starts.held("s", wait_seconds=0.05):
                pass
    async with b.starts.held("s", wait_seconds=1):  # released: the next start goes at once
        pass


async def test_a_holder_keeps_its_lease_past_the_lease_time_while_it_launches(replica_pair, admin):
    a, b = replica_pair
    sleeps = Sleeps()
    starts = StartLeases(a.store, Leases(a.store), sleep=sleeps)
    async with starts.held("s", wait_seconds=1):
        slept = 0.0
        while slept <= 2 * LEASE_SECONDS:  # a slow provider call: two leases' time, renewed as it goes
            slept += await sleeps.pass_time(admin, a.store)
        with pytest.raises(StartBusy):
            async with b.starts.held("s", wait_seconds=0.05):
                pass


async def test_a_dead_holders_lease_runs_out_and_the_waiter_goes_on(replica_pair, admin):
    a, b = replica_pair
    token = "r-dead:0"
    key = a.store.key("start", "s")
    # A replica that took the lease and died: nobody renews it.
    await a.store.redis.set(key, token, px=int(LEASE_SECONDS * 1000))
    sleeps = Sleeps()
    starts = StartLeases(b.store, Leases(b.store), sleep=sleeps)

    async def waiter() -> object:
        async with starts.held("s", wait_seconds=600):
            return await b.store.redis.get(key)

    waiting = asyncio.create_task(waiter())
    tries = 0
    while await a.store.redis.get(key) == token:  # the dead lease lasts: the waiter tries again and again
        assert not waiting.done()
        await sleeps.pass_time(admin, b.store)  # …until the store's clock has moved past its end
        tries += 1
    assert tries > 1
    assert await waiting not in (None, token)  # it ran out, and the waiter went on with its own
