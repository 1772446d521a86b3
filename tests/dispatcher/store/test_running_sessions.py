"""The deployment's running sessions kept in the store (dispatcher/store/running_sessions.py), on a
real redis-server with two replicas: between reconciles admission's count is the kept set, not the
provider's list; a launch that lands and a session that ends move it at once, whichever replica saw
them; a reconcile puts right what nobody saw (a replica killed between its create and its landing,
an end unnoticed) and keeps a launch that lands while it lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from dispatcher.sessions.admission import Admission
from dispatcher.store.coordination import Launches
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.running_sessions import RECONCILE_SECONDS, PartlyFound


class Provider:
    def __init__(self, *active: str) -> None:
        self.active = set(active)
        self.lists = 0
        self.while_listing: Callable[[], Awaitable[None]] | None = None
        self.unanswered: set[str] = set()  # sessions in a cell that does not answer the list

    async def sessions(self) -> set[str] | PartlyFound:
        self.lists += 1
        found = self.active - self.unanswered
        if self.while_listing is not None:
            await self.while_listing()
        return PartlyFound(found) if self.unanswered else found

    async def count(self) -> int:
        return len(await self.sessions())


async def recount(launches: Launches, provider: Provider) -> int:
    """A recount with no deployment's count fresh enough (a window of 0): the kept set, else the list."""
    await launches.recount(provider.count, 0.0, provider.sessions)
    return launches.current()


async def reconcile_due(admin: Redis, prefix: str) -> None:
    """The last reconcile was RECONCILE_SECONDS ago (the store's clock moved on)."""
    seconds, micros = await admin.time()
    at = seconds * 1_000_000 + micros - int((RECONCILE_SECONDS + 1) * 1_000_000)
    await admin.set(f"{prefix}launches:running:reconciled", at)


async def running(admin: Redis, prefix: str) -> set[str]:
    return {str(member) for member in await admin.zrange(f"{prefix}launches:running", 0, -1)}


async def test_between_reconciles_the_kept_sessions_are_the_count_at_every_replica(
        replica_pair: tuple[RedisCoordination, RedisCoordination]) -> None:
    a, b = (replica.launches(keep_seconds=10.0) for replica in replica_pair)
    provider = Provider("s-1", "s-2", "s-3")
    assert await recount(a, provider) == 3 and provider.lists == 1  # a store of the previous version: listed
    assert await recount(b, provider) == 3 and await recount(a, provider) == 3 and provider.lists == 1
    admission = Admission(10, provider.count, launches=b, refresh_seconds=0.0, active_sessions=provider.sessions)
    try:
        await admission.recounted()
        async with admission.slot(session_id="s-4"):
            provider.active.add("s-4")
        assert await recount(a, provider) == 4
        provider.active.discard("s-2")
        await admission.ended("s-2")  # its end told at b
        assert await recount(a, provider) == 3
        assert provider.lists == 1  # no list since the first: every count was the kept set
    finally:
        await admission.aclose()


async def test_a_reconcile_puts_right_what_nobody_saw_and_keeps_what_lands_meanwhile(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, b = (replica.launches(keep_seconds=10.0) for replica in replica_pair)
    provider = Provider("s-1", "s-2")
    assert await recount(a, provider) == 2
    provider.active.add("s-9")  # its replica died between the create and the landing: never recorded
    provider.active.discard("s-1")  # ended, and no replica's timeline told it
    assert await recount(a, provider) == 2 and await recount(b, provider) == 2
    assert provider.lists == 1  # not seen until the reconcile

    async def lands() -> None:  # at b, after the provider's list was read
        async with b.slot(10, session_id="s-new"):
            pass

    provider.while_listing = lands
    await reconcile_due(admin, prefix)
    await recount(a, provider)
    assert provider.lists == 2
    assert await running(admin, prefix) == {"s-2", "s-9", "s-new"}
    provider.while_listing = None
    assert await recount(b, provider) == 3 and provider.lists == 2  # kept again


async def test_a_partial_lists_count_keeps_the_sessions_it_could_not_judge(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, b = (replica.launches(keep_seconds=10.0) for replica in replica_pair)
    provider = Provider("s-1", "s-2", "s-3")
    assert await recount(a, provider) == 3
    provider.unanswered = {"s-3"}  # its cell did not answer: it still runs
    await reconcile_due(admin, prefix)
    assert await recount(a, provider) == 3 and provider.lists == 2  # the reconcile's own count, s-3 in it
    assert await recount(b, provider) == 3 and provider.lists == 2  # then the kept set's
    provider.active.discard("s-1")  # ended, and no replica's timeline told it
    await reconcile_due(admin, prefix)
    assert await recount(a, provider) == 3  # a partial list judges nothing gone: the next whole one will
    provider.unanswered = set()
    await reconcile_due(admin, prefix)
    assert await recount(a, provider) == 2 and await running(admin, prefix) == {"s-2", "s-3"}
