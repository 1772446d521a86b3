"""A carrier's calls-per-second, paced across every replica: a trunk's `cps` (dispatcher/phone/trunk_calls.py)
or a Twilio account's (dispatcher/phone/twilio_dial.py). Both take their turns from the store's
deployment-wide bucket, the one a provider's create limit uses: a call may reserve the next turn and wait
for it, at most `max_wait` seconds, else it is refused 429 with the wait, and nothing was asked of the
carrier. With several regions, across every region too (dispatcher/regions/pace_homes.py).

A call that names its key (`holder`) shares the pace with every other key's: while its key holds a turn
still due, it takes a place in its key's queue and asks again when the turns before it came, so each key
waiting holds one turn ahead at a time and the keys' turns interleave. A call whose turn could not come
within `max_wait` is refused at its first ask, as without a key (docs/phone.md#sharing-a-pace).

A call cancelled while it waits (its client gone, its task stopped) gives back what it held: its place in its
key's queue, and its turn where still to come, which the next call to ask takes (dispatcher/store/given_turns.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid

from dispatcher.errors import ApiError
from dispatcher.regions.pace_homes import PaceTurn, RegionPaces, bucket_turn
from dispatcher.store.coordination import CreateLimits
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

GIVE_BACK_SECONDS = 2.0  # a cancelled call's give-back waits no longer for the store (its own call is bounded too)
_giving: set[asyncio.Task[None]] = set()  # give-backs under way, held until done


async def paced(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, max_wait: float, *, code: str,
                what: str, setting: str) -> float:
    """The seconds `pace_turn` waited."""
    return (await pace_turn(limits, bucket, per_second, max_wait, code=code, what=what, setting=setting)).wait


async def pace_turn(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, max_wait: float, *,
                    code: str, what: str, setting: str, holder: str | None = None) -> PaceTurn:
    """Waits for the next turn of `bucket` (`twilio:<account>`, `trunk:<name>`): the turn, once waited (its
    `wait` all this call waited). `what` names the pace in the refusal ("trunk 'far'"), `setting` the bound a
    team may raise; `holder` the key whose turn it is, shared with other keys'. With several regions
    (`RegionPaces`) the turn is the bucket's home region's, or this region's share of the pace."""
    ticket = uuid.uuid4().hex[:16]  # this call's place in its key's queue, and the name of its turn
    try:
        return await _turn(limits, bucket, per_second, max_wait, code=code, what=what, setting=setting,
                           holder=holder, ticket=ticket)
    except asyncio.CancelledError:
        # In a task of its own: a second cancel (a server stopping) does not stop it half-way.
        giving = asyncio.ensure_future(_give_back(limits, bucket, per_second, holder, ticket))
        _giving.add(giving)
        giving.add_done_callback(_giving.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(giving)
        raise


async def _give_back(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, holder: str | None,
                     ticket: str) -> None:
    try:
        async with asyncio.timeout(GIVE_BACK_SECONDS):
            if isinstance(limits, RegionPaces):
                await limits.give_back(bucket, per_second, holder, ticket)
            else:
                await limits.create_limit(bucket, per_second, 1).give_back(ticket, holder)
    except (StoreUnavailable, TimeoutError):  # it runs out by itself: a place at its wait, a turn once due
        log.info("a cancelled call's turn of %s was not given back (the store did not answer)", bucket)


async def _turn(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, max_wait: float, *,
                code: str, what: str, setting: str, holder: str | None, ticket: str) -> PaceTurn:
    waited = 0.0  # queued behind the key's own earlier turns
    while True:
        left = max(0.0, max_wait - waited)
        # Named by the carrier's account (or trunk) alone: replicas with different rates (mid-rollout) share
        # its bucket, each refilling it at its own, so the carrier never gets their rates added.
        if isinstance(limits, RegionPaces):
            turn = await limits.turn(bucket, per_second, left, holder, ticket)
        else:
            taken = await bucket_turn(limits, bucket, per_second, left, holder, ticket)
            turn = PaceTurn(taken.granted, taken.wait, queued=taken.queued)
        if not turn.queued:
            break
        if turn.wait > left:  # an older home's answer: the key's own turn comes past this call's bound
            turn = PaceTurn(False, waited + turn.wait + 1 / per_second, turn.by)
            break
        await asyncio.sleep(turn.wait)
        waited += turn.wait
    if not turn.granted:
        turn = PaceTurn(False, waited + turn.wait, turn.by, turn.refusal)
        why = turn.refusal or (f"this call would wait {turn.wait:.1f} s, more than {setting} ({max_wait:g} s)")
        raise ApiError(429, code, f"{what} takes {per_second:g} calls a second: {why}; try again after Retry-After",
                       retry_after=max(1.0, math.ceil(turn.wait)))
    if turn.wait > 0:
        await asyncio.sleep(turn.wait)
    return PaceTurn(True, waited + turn.wait, turn.by)
