"""TURN credentials per API key: counted until they expire, refused past the bound with the wait,
shared by the replicas through the store (a real redis-server), each key apart."""

from __future__ import annotations

import pytest

from dispatcher.errors import ApiError
from dispatcher.media.turn_quota import TurnQuota
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.credential_counts import SharedCredentialCounts
from dispatcher.store.forgiving import ForgivingCounts
from dispatcher.store.memory import LocalCredentialCounts
from tests.dispatcher.store.conftest import prefix, redis, settings_for, store  # noqa: F401 (fixtures)
from tests.support.processes import free_port


def counted_in(one: Store) -> ForgivingCounts:
    """What `RedisCoordination.turn_credentials()` is: the store's count, this replica's when it is down."""
    return ForgivingCounts(SharedCredentialCounts(one), LocalCredentialCounts())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_holds_at_most_its_bound_until_the_oldest_credential_expires() -> None:
    clock = Clock()
    quota = TurnQuota(2, 600, LocalCredentialCounts(), clock=clock)
    await quota.take("key-a")
    clock.now += 100
    await quota.take("key-a")
    with pytest.raises(ApiError) as refused:
        await quota.take("key-a")
    assert (refused.value.status, refused.value.code) == (429, "turn_credentials_exhausted")
    assert refused.value.retry_after == 500  # the first credential expires 600 s after it was issued
    await quota.take("key-b")  # another key is not touched by key-a's credentials
    clock.now += 499.5
    with pytest.raises(ApiError) as refused:
        await quota.take("key-a")
    assert refused.value.retry_after == 1  # whole seconds, never 0 while it still counts
    clock.now += 0.5
    await quota.take("key-a")  # the first one expired: its place is free


async def test_a_credential_given_back_does_not_count() -> None:
    quota = TurnQuota(1, 600, LocalCredentialCounts(), clock=Clock())
    handle = await quota.take("key-a")
    await quota.give_back("key-a", handle)
    await quota.take("key-a")
    with pytest.raises(ApiError):
        await quota.take("key-a")


async def test_replicas_count_a_keys_credentials_together_in_the_store(redis, prefix) -> None:  # noqa: F811
    clock = Clock()
    stores = [Store(settings_for(redis, f"r-{n}", prefix)) for n in range(2)]
    replicas = [TurnQuota(2, 600, counted_in(s), clock=clock) for s in stores]
    try:
        await replicas[0].take("key-a")
        clock.now += 10
        second = await replicas[1].take("key-a")
        with pytest.raises(ApiError) as refused:
            await replicas[0].take("key-a")
        assert refused.value.retry_after == 590
        await replicas[1].take("key-b")  # each key its own count
        await replicas[1].give_back("key-a", second)
        await replicas[0].take("key-a")  # the place given back at one replica is free at the other
        clock.now += 600
        await replicas[1].take("key-a")  # expired ones no longer count
    finally:
        for one in stores:
            await one.aclose()


async def test_an_unreachable_store_leaves_the_count_to_the_replica() -> None:
    clock = Clock()
    nobody = StoreSettings(url=f"redis://127.0.0.1:{free_port()}", replica_id="r-x", prefix="{t}:",
                           timeout_seconds=0.5)  # a port nothing listens on
    unreachable = Store(nobody)
    quota = TurnQuota(1, 600, counted_in(unreachable), clock=clock)
    try:
        await quota.take("key-a")
        with pytest.raises(ApiError):
            await quota.take("key-a")
    finally:
        await unreachable.aclose()

