"""A carrier's pace shared between keys (`CreateLimit.shared`, docs/phone.md#sharing-a-pace): in one process,
on a real redis-server (one replica and several), and with that store gone (this replica's own count). A key
holds one turn ahead at a time, so another key's call waits behind at most one of its turns, however many
of its calls (a campaign's rows) ask; a key alone takes every turn back to back.

The bucket's turns are 100 s apart, so what is counted never depends on how fast the test runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dispatcher.store.coordination import Coordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.store.conftest import settings_for
from tests.dispatcher.store.test_coordination_contract import ONE_PROCESS, REDIS, REDIS_DOWN, build

INTERVAL = 100.0  # seconds between two turns
PER_SECOND = 1 / INTERVAL


@pytest.fixture(params=[ONE_PROCESS, REDIS, REDIS_DOWN])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(request.param, request)
    yield one
    await one.aclose()


def turns_ahead(wait: float) -> int:
    """How many turns of the bucket come before one due after `wait`."""
    return round(wait / INTERVAL)


async def test_a_key_alone_takes_every_turn_and_holds_one_ahead(coordination: Coordination) -> None:
    pace = coordination.create_limit("trunk:far", PER_SECOND, 1)
    first = await pace.shared("key-a", 1000.0)
    assert first.granted and first.wait == 0  # due now: nothing held ahead
    second = await pace.shared("key-a", 1000.0)
    assert second.granted and turns_ahead(second.wait) == 1  # the very next turn: the whole pace
    third = await pace.shared("key-a", 1000.0)  # a third row of its campaign: asks again when its turn came
    assert not third.granted and third.queued and turns_ahead(third.wait) == 1
    assert turns_ahead((await pace.look()).wait) == 2  # nothing reserved for it


async def test_another_keys_call_waits_behind_one_turn_of_a_campaign_not_all_of_its_rows(
        coordination: Coordination) -> None:
    pace = coordination.create_limit("twilio:AC1", PER_SECOND, 1)
    rows = [await pace.shared("campaign-key", 1000.0) for _ in range(10)]  # ten rows asking at once
    assert [r.granted for r in rows] == [True, True] + [False] * 8 and all(r.queued for r in rows[2:])
    call = await pace.shared("calls-key", 1000.0)
    assert call.granted and turns_ahead(call.wait) == 2  # behind the turn due now and one row's
    third = await pace.shared("third-key", 1000.0)
    assert third.granted and turns_ahead(third.wait) == 3  # one turn each, round-robin
    again = await pace.shared("calls-key", 1000.0)
    assert again.queued and turns_ahead(again.wait) == 2  # its own turn first


async def test_a_turn_past_the_longest_wait_is_refused_and_holds_nothing(coordination: Coordination) -> None:
    pace = coordination.create_limit("trunk:slow", PER_SECOND, 1)
    assert (await pace.shared("key-a", 1000.0)).granted
    refused = await pace.shared("key-b", 5.0)  # the next turn is 100 s away
    assert not refused.granted and not refused.queued and turns_ahead(refused.wait) == 1
    taken = await pace.shared("key-b", 1000.0)  # nothing was held for it: it takes the next turn now
    assert taken.granted and turns_ahead(taken.wait) == 1


async def test_a_keys_turn_held_at_one_replica_holds_at_every_replica(request: pytest.FixtureRequest) -> None:
    server, prefix = request.getfixturevalue("redis"), request.getfixturevalue("prefix")
    replicas = [RedisCoordination(settings_for(server, f"r-{n}", prefix)) for n in range(2)]
    try:
        paces = [r.create_limit("trunk:far", PER_SECOND, 1) for r in replicas]
        assert (await paces[0].shared("campaign-key", 1000.0)).granted
        assert (await paces[1].shared("campaign-key", 1000.0)).granted  # the next turn, at the other replica
        held = await paces[0].shared("campaign-key", 1000.0)
        assert held.queued and turns_ahead(held.wait) == 1
        call = await paces[0].shared("calls-key", 1000.0)
        assert call.granted and turns_ahead(call.wait) == 2
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_keys_calls_past_what_its_turns_serve_in_the_wait_are_refused_at_once(
        coordination: Coordination) -> None:
    """A key's queue is bounded by the pace and the longest wait, as a call naming no key is."""
    pace = coordination.create_limit("trunk:busy", PER_SECOND, 1)
    assert (await pace.shared("key-a", 250.0, "t0")).granted  # due now
    assert (await pace.shared("key-a", 250.0, "t1")).granted  # the next turn, 100 s away
    queued = await pace.shared("key-a", 250.0, "t2")  # its turn at 200 s at the earliest: within the wait
    assert queued.queued and turns_ahead(queued.wait) == 1  # asks again once the key's turn came
    refused = await pace.shared("key-a", 250.0, "t3")  # behind it: 300 s at the earliest
    assert not refused.granted and not refused.queued and turns_ahead(refused.wait) == 3
    again = await pace.shared("key-a", 250.0, "t2")  # the queued call asking early keeps its one place
    assert again.queued and turns_ahead(again.wait) == 1
    other = await pace.shared("key-b", 250.0, "u0")  # another key is not held by key-a's queue
    assert other.granted and turns_ahead(other.wait) == 2
