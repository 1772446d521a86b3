"""A turn recorded for one thing (`CreateLimit.turn_of`, a trunk call's INVITE: dispatcher/phone/invite_spacing.py):
read or taken in one step, in one process, on a real redis-server and with that store gone. Asks at once for
one call's turn take one turn of the bucket, so the next call's comes one turn later, not two.

The bucket's turns are 100 s apart, so what is counted never depends on how fast the test runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatcher.store.coordination import Coordination
from tests.dispatcher.store.test_coordination_contract import ONE_PROCESS, REDIS, REDIS_DOWN, build

INTERVAL = 100.0


@pytest.fixture(params=[ONE_PROCESS, REDIS, REDIS_DOWN])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    one = build(request.param, request)
    yield one
    await one.aclose()


async def test_asks_at_once_for_one_calls_turn_take_one_turn(coordination: Coordination) -> None:
    invites = coordination.create_limit("trunk-invites:far", 1 / INTERVAL, 1)
    first = await asyncio.gather(*(invites.turn_of("invite-due:vf_a", 900.0) for _ in range(3)))
    assert [(t.granted, round(t.wait / INTERVAL)) for t in first] == [(True, 0)] * 3
    nxt = await invites.turn_of("invite-due:vf_b", 900.0)
    assert nxt.granted and round(nxt.wait / INTERVAL) == 1  # one turn later, not three
    again = await invites.turn_of("invite-due:vf_b", 900.0)
    assert again.granted and round(again.wait / INTERVAL) == 1  # asked again: the same turn, none taken
    assert round((await invites.look()).wait / INTERVAL) == 2


async def test_a_turn_past_the_longest_wait_is_refused_and_not_taken(coordination: Coordination) -> None:
    """What a home grants another region's call (dispatcher/regions/pace_homes.py): nothing past its wait."""
    invites = coordination.create_limit("trunk-invites:bound", 1 / INTERVAL, 1)
    assert (await invites.turn_of("invite-due:vf_a", 900.0, 1.5 * INTERVAL)).granted  # due now
    assert round((await invites.turn_of("invite-due:vf_b", 900.0, 1.5 * INTERVAL)).wait / INTERVAL) == 1
    far = await invites.turn_of("invite-due:vf_c", 900.0, 1.5 * INTERVAL)
    assert not far.granted and round(far.wait / INTERVAL) == 2  # the earliest it could come
    assert round((await invites.look()).wait / INTERVAL) == 2  # none taken for it
    again = await invites.turn_of("invite-due:vf_b", 900.0, 0.0)
    assert again.granted and round(again.wait / INTERVAL) == 1  # a turn recorded is the call's, whatever the bound
