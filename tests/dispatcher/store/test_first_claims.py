"""An Idempotency-Key's holder region is recorded once in the home region's store, under the store
user's own access rules, and the first region recorded is every later asker's answer."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.first_claims import StoreFirstClaims
from dispatcher.store.memory import LocalFirstClaims
from tests.support.redis_server import RedisServer


async def test_the_first_region_recorded_is_the_answer_for_everyone(store: Store, redis: RedisServer) -> None:
    holders = StoreFirstClaims(store)
    answers = await asyncio.gather(*(holders.first("k1", region, 60) for region in ("eu", "us", "ap")))
    assert len(set(answers)) == 1 and answers[0] in ("eu", "us", "ap")
    assert await holders.first("k1", "us", 60) == answers[0]
    assert await holders.first("k2", "us", 60) == "us"
    assert redis.refused() == []  # SET NX GET is within the store user's rules


async def test_a_provisional_record_is_kept_longer_only_for_its_holder(store: Store, redis: RedisServer) -> None:
    holders = StoreFirstClaims(store)
    assert await holders.first("k3", "eu", 60) == "eu"
    assert not await holders.keep("k3", "us", 86400)  # another region's word keeps nothing
    assert 0 < redis.admin().ttl(store.key("home", "k3")) <= 60
    assert await holders.keep("k3", "eu", 86400)
    assert redis.admin().ttl(store.key("home", "k3")) > 86000
    assert not await holders.keep("k4", "eu", 86400)  # nothing recorded: nothing made
    assert redis.admin().exists(store.key("home", "k4")) == 0
    assert redis.refused() == []  # the leases' compare-and-extend script is the store user's


async def test_a_store_that_does_not_answer_raises_rather_than_guess(store: Store, redis: RedisServer) -> None:
    redis.stop()
    with pytest.raises(StoreUnavailable):
        await StoreFirstClaims(store).first("k1", "eu", 60)


async def test_one_process_remembers_the_first_until_it_expires() -> None:
    now = [0.0]
    holders = LocalFirstClaims(clock=lambda: now[0], most=2)
    assert await holders.first("k", "eu", 10) == "eu"
    assert await holders.first("k", "us", 10) == "eu"
    now[0] = 11
    assert await holders.first("k", "us", 10) == "us"
