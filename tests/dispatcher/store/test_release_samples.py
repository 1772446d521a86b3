"""The automatic rollback's sample of each release, as every replica shares it: in a real redis-server
as the AWS stack's store user, and in one process's memory, held to the same contract."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dispatcher.store.client import Store
from dispatcher.store.coordination import ReleaseSamples
from dispatcher.store.release_samples import MemoryReleaseSamples, StoreReleaseSamples
from tests.support.redis_server import RedisServer

KEEP, DAY = 5, 86_400.0


def entry(at: float, failure: str | None = None) -> list[object]:
    return [at, failure, 1.5, 0.8]


@pytest.fixture(params=["store", "memory"])
def samples(request: pytest.FixtureRequest) -> ReleaseSamples:
    if request.param == "memory":
        return MemoryReleaseSamples()
    return StoreReleaseSamples(request.getfixturevalue("store"))


async def test_a_session_counts_once_whoever_records_it(samples: ReleaseSamples) -> None:
    assert await samples.add("next", "s-1", entry(10.0, "bot error"), keep=KEEP, keep_seconds=DAY)
    assert not await samples.add("next", "s-1", entry(11.0), keep=KEEP, keep_seconds=DAY)  # its end seen again
    assert not await samples.add("stable", "s-1", entry(11.0), keep=KEEP, keep_seconds=DAY)
    read = await samples.read("next", 0)
    assert [e for _, e in read.entries] == [entry(10.0, "bot error")] and read.last == 1
    assert (await samples.read("stable", 0)).entries == []


async def test_a_reader_gets_only_what_was_added_since_its_last_look_and_the_newest_are_kept(
        samples: ReleaseSamples) -> None:
    for n in range(3):
        await samples.add("stable", f"s-{n}", entry(float(n)), keep=KEEP, keep_seconds=DAY)
    first = await samples.read("stable", 0)
    for n in range(3, 9):
        await samples.add("stable", f"s-{n}", entry(float(n)), keep=KEEP, keep_seconds=DAY)
    later = await samples.read("stable", first.last)
    assert [e[0] for _, e in later.entries] == [4.0, 5.0, 6.0, 7.0, 8.0]  # the newest KEEP, all past its look
    assert later.last == 9


async def test_a_restart_moves_only_forward(samples: ReleaseSamples) -> None:
    assert (await samples.read("next", 0)).since == 0.0
    await samples.restart("next", 1_800_000_000.5, DAY)
    await samples.restart("next", 1_700_000_000.0, DAY)  # a replica that heard of an older change late
    assert (await samples.read("next", 0)).since == 1_800_000_000.5
    assert (await samples.read("stable", 0)).since == 0.0


async def test_the_store_user_keeps_the_sample_under_the_prefix_with_an_expiry(
        store: Store, redis: RedisServer, admin: Redis, prefix: str) -> None:
    samples = StoreReleaseSamples(store)
    await samples.add("next", "s-1", entry(1.0), keep=KEEP, keep_seconds=3600.0)
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await admin.keys(f"{prefix}releases:*"))
    assert keys == [f"{prefix}releases:judged:s-1", f"{prefix}releases:sample-meta:next",
                    f"{prefix}releases:sample:next"]
    assert 0 < await admin.pttl(f"{prefix}releases:sample:next") <= 3_600_000
    assert redis.refused() == []
