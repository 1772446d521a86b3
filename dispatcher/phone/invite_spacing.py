"""A trunk's INVITEs spaced at its `cps` as the trunk sees them, not only as the dispatcher hands them over.

A trunk call takes its pace turn when the dispatcher hands it to the edge (dispatcher/phone/call_pace.py),
but the edge sends the INVITE only once the session's bot joined: seconds later for a bot started cold, at
once for a warm one. Two calls handed over a turn apart could reach the trunk closer than a turn (0.42 s
apart at `cps = 2`: tests/sip/test_campaign_trunk.py). The edge asks whether the bot joined before its
INVITE (`GET /edge/calls/{id}`), so the dispatcher answers `joined` only at the call's own turn of a second
bucket at the trunk's `cps` (`trunk-invites:<name>`), taken once a session, read or taken by one step in the
store on the store's clock: every replica the edge asks, whatever its clock, holds the same turn. The
hand-over's pace bounds how many calls wait here (their turns come at most a few apart); this bucket spaces
them. docs/sip.md#outbound-calls.

With several regions the bucket has one home region, as the trunk's pace has (dispatcher/regions/pace_homes.py):
another region asks it for the call's turn (`POST /regions/pace`, within ASK_SECONDS), so the regions' INVITEs
together keep the trunk's `cps`. While the home does not answer the call is not told `joined` (it asks again);
once the home is passed over, this region spaces its INVITEs at its share of the `cps` in its own store. A home
of an earlier release (it refuses the bucket) leaves each region spacing its own at the whole `cps`, as then."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

from dispatcher.regions.pace_homes import INVITES, RECORD_SECONDS, OlderHome, RegionPaces
from dispatcher.store.coordination import CreateLimits, FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

TRUNK, DUE = "invite-trunk:", "invite-due:"
NOT_YET = math.inf  # a call whose turn the home did not give now: it is told so, and asks again
HOLD_SECONDS = 3.0  # an answer held at most this long: the edge's request gives up after 5 s (sipedge/call_reports.py)


class InviteSpacing:
    def __init__(self, limits: CreateLimits | RegionPaces, records: FirstClaims, max_wait: float = 5.0) -> None:
        """`max_wait`: the hand-over's longest wait, which bounds how far ahead a turn is taken."""
        self._paces = limits if isinstance(limits, RegionPaces) else None
        self._limits = limits.store_limits if isinstance(limits, RegionPaces) else limits
        self._records = records
        self._max_wait = max_wait

    async def handed(self, session_id: str, trunk: str) -> None:
        """Records the call's trunk before the edge is asked; a store that does not answer leaves the call
        spaced by its hand-over's pace alone (never refused for it)."""
        try:
            await self._records.first(TRUNK + session_id, trunk, RECORD_SECONDS)
        except StoreUnavailable:
            log.warning("session %s: its trunk's INVITE spacing was not recorded (the store did not answer)",
                        session_id)

    async def wait(self, session_id: str, cps_of: Callable[[str], Awaitable[float]]) -> float:
        """Seconds until the call's INVITE may go: its turn, taken at the first ask. 0 for a call with no
        record (handed over by an older dispatcher, or while the store did not answer); NOT_YET while the
        bucket's home region does not give it."""
        with contextlib.suppress(StoreUnavailable):
            trunk = await self._records.held(TRUNK + session_id)
            if trunk is None:
                return 0.0
            bucket, cps = f"{INVITES}:{trunk}", await cps_of(trunk)
            if self._paces is not None:
                with contextlib.suppress(OlderHome):
                    turn = await self._paces.turn(bucket, cps, self._max_wait, record=DUE + session_id)
                    return turn.wait if turn.granted else NOT_YET
            # Read or taken in one step in the store, on its clock: asks at once (the edge's retried poll, at any
            # replica) hold one turn, and replicas whose clocks differ say the same wait.
            return (await self._limits.create_limit(bucket, cps, 1).turn_of(DUE + session_id, RECORD_SECONDS)).wait
        return 0.0

    async def give_back(self, session_id: str, cps_of: Callable[[str], Awaitable[float]]) -> None:
        """The INVITE turn of a call whose session ended before its INVITE went, given back for the next call
        (where this region's store holds it: a turn another region's home gave passes unused there)."""
        with contextlib.suppress(StoreUnavailable):
            trunk = await self._records.held(TRUNK + session_id)
            if trunk is None:
                return
            bucket, cps = f"{INVITES}:{trunk}", await cps_of(trunk)
            if self._paces is not None:
                await self._paces.give_back_record(bucket, cps, DUE + session_id)
            else:
                await self._limits.create_limit(bucket, cps, 1).give_back_turn(DUE + session_id)
