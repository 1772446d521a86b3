"""Review of the pace shared between keys (dispatcher/phone/call_pace.py `pace_turn(holder=…)`): the bound
`max_wait` must still bound how many of one key's calls are held open waiting, as it did before the share.

The bucket's turns are 100 s apart on a clock the test never steps: what is counted is which calls are
refused at their first ask and which are left sleeping, never how long anything took."""

from __future__ import annotations

import asyncio

from dispatcher.errors import ApiError
from dispatcher.phone.call_pace import pace_turn
from tests.dispatcher.phone.test_trunk_calls import SteppedBuckets

PER_SECOND = 0.01  # a turn every 100 s
MAX_WAIT = 250.0  # room for the turns due at 0, 100 and 200 s
CALLS = 20  # one key's requests at once (POST /calls, or a campaign's rows)


async def held_open(holder: str | None) -> tuple[int, int]:
    """(calls still waiting, calls refused 429) once each of CALLS asked the bucket once."""
    buckets = SteppedBuckets()
    tasks = [asyncio.create_task(pace_turn(buckets, "trunk:far", PER_SECOND, MAX_WAIT, code="trunk_paced",
                                           what="trunk 'far'", setting="SIP_CALL_MAX_WAIT_SECONDS", holder=holder))
             for _ in range(CALLS)]
    for _ in range(20):  # each task runs to its first sleep (the bucket answers without a round trip)
        await asyncio.sleep(0)
    waiting = [t for t in tasks if not t.done()]
    refused = [t for t in tasks if t.done() and isinstance(t.exception(), ApiError)]
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    return len(waiting), len(refused)


async def test_without_a_holder_calls_past_the_bound_are_refused_at_once() -> None:
    """The behaviour the bound gave before the share (and still gives a call naming no key)."""
    waiting, refused = await held_open(None)
    assert (waiting, refused) == (2, CALLS - 3)  # turns at 100 and 200 s sleep; the one at 0 s went


async def test_one_keys_calls_held_waiting_are_bounded_by_the_pace_and_max_wait() -> None:
    waiting, refused = await held_open("key-a")
    assert waiting <= int(MAX_WAIT * PER_SECOND), (waiting, refused)  # as without a holder: 2
