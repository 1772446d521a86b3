"""A carrier's calls-per-second, paced across every replica: a trunk's `cps` (dispatcher/phone/trunk_calls.py)
or a Twilio account's (dispatcher/phone/twilio_dial.py). Both take their turns from the store's
deployment-wide bucket, the one a provider's create limit uses: a call may reserve the next turn and wait
for it, at most `max_wait` seconds, else it is refused 429 with the wait, and nothing was asked of the
carrier. With several regions, across every region too (dispatcher/regions/pace_homes.py)."""

from __future__ import annotations

import asyncio
import math

from dispatcher.errors import ApiError
from dispatcher.regions.pace_homes import PaceTurn, RegionPaces
from dispatcher.store.coordination import CreateLimits


async def paced(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, max_wait: float, *, code: str,
                what: str, setting: str) -> float:
    """The seconds `pace_turn` waited."""
    return (await pace_turn(limits, bucket, per_second, max_wait, code=code, what=what, setting=setting)).wait


async def pace_turn(limits: CreateLimits | RegionPaces, bucket: str, per_second: float, max_wait: float, *,
                    code: str, what: str, setting: str) -> PaceTurn:
    """Waits for the next turn of `bucket` (`twilio:<account>`, `trunk:<name>`): the turn, once waited. `what`
    names the pace in the refusal ("trunk 'far'"), `setting` the bound a team may raise. With several
    regions (`RegionPaces`) the turn is the bucket's home region's, or this region's share of the pace."""
    # Named by the carrier's account (or trunk) alone: replicas with different rates (mid-rollout) share
    # its bucket, each refilling it at its own, so the carrier never gets their rates added.
    if isinstance(limits, RegionPaces):
        turn = await limits.turn(bucket, per_second, max_wait)
    else:
        taken = await limits.create_limit(bucket, per_second, 1).cold(max_wait)
        turn = PaceTurn(taken.granted, taken.wait)
    if not turn.granted:
        why = turn.refusal or (f"this call would wait {turn.wait:.1f} s, more than {setting} ({max_wait:g} s)")
        raise ApiError(429, code, f"{what} takes {per_second:g} calls a second: {why}; try again after Retry-After",
                       retry_after=max(1.0, math.ceil(turn.wait)))
    if turn.wait > 0:
        await asyncio.sleep(turn.wait)
    return turn
