"""Hostile review of turns given back (dispatcher/store/given_turns.py) where two buckets of one pace share a
store: the trunk INVITE bucket's home bucket and this region's share of it (`<bucket>@share`,
dispatcher/regions/pace_homes.py). On a real redis-server, signed in as the stack's store user (conftest).

The buckets' turns are 100 s apart, so what is counted never depends on how fast the test runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest

from dispatcher.regions.config import Regions
from dispatcher.regions.pace_homes import INVITES, RegionPaces, bucket_turn, pace_home
from dispatcher.regions.peers import Peers
from dispatcher.store.coordination import Coordination
from tests.dispatcher.store.test_coordination_contract import REDIS, build

INTERVAL = 100.0
SHARE = 1 / INTERVAL  # this region's share of the trunk's cps (two regions: the cps is twice this)
URLS = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}
SECRET = "region-secret-0123456789abcdefghij"


@pytest.fixture
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(REDIS, request)
    yield one
    await one.aclose()


async def test_a_share_turn_given_back_is_taken_by_this_region_s_next_call(coordination: Coordination) -> None:
    """us is not the bucket's home (eu is) and eu does not answer: us's calls take turns of its share. A call
    that ended before its INVITE (GET /edge/calls/{id} read `ended`) gives its share turn back; the next call
    of us should go at it, not a turn after the last."""
    trunk = next(n for n in (f"far{i}" for i in range(100)) if pace_home(URLS, f"{INVITES}:{n}") == "eu")
    bucket = f"{INVITES}:{trunk}"
    us = RegionPaces(Peers(Regions("us", MappingProxyType(URLS), SECRET.encode())), coordination)

    async def share_turn(session: str) -> float:  # what RegionPaces._share takes for an INVITE
        turn = await bucket_turn(coordination, f"{bucket}@share", SHARE, 5.0, None, record=f"us:invite-due:{session}")
        return round(turn.wait / INTERVAL)

    assert [await share_turn(s) for s in ("a", "b", "c")] == [0, 1, 2]
    await us.give_back_record(bucket, 2 * SHARE, "invite-due:b")  # b's session ended before its INVITE
    assert await share_turn("d") == 1  # b's turn, as the memory count (one process) says
