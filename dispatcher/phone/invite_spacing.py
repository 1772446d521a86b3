"""A trunk's INVITEs spaced at its `cps` as the trunk sees them, not only as the dispatcher hands them over.

A trunk call takes its pace turn when the dispatcher hands it to the edge (dispatcher/phone/call_pace.py),
but the edge sends the INVITE only once the session's bot joined: seconds later for a bot started cold, at
once for a warm one. Two calls handed over a turn apart could reach the trunk closer than a turn (0.42 s
apart at `cps = 2`: tests/sip/test_campaign_trunk.py). The edge asks whether the bot joined before its
INVITE (`GET /edge/calls/{id}`), so the dispatcher answers `joined` only at the call's own turn of a second
bucket at the trunk's `cps` (`trunk-invites:<name>`), taken once a session, read or taken by one step in the
store on the store's clock: every replica the edge asks, whatever its clock, holds the same turn. The
hand-over's pace bounds how many calls wait here (their turns come at most a few apart); this bucket spaces
them. docs/sip.md#outbound-calls."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from dispatcher.store.coordination import CreateLimits, FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

TRUNK, DUE = "invite-trunk:", "invite-due:"
# A call's records outlive the edge's wait for its bot (its `answer_seconds`) and its retries.
RECORD_SECONDS = 900.0
HOLD_SECONDS = 3.0  # an answer held at most this long: the edge's request gives up after 5 s (sipedge/call_reports.py)


class InviteSpacing:
    def __init__(self, limits: CreateLimits, records: FirstClaims) -> None:
        self._limits = limits
        self._records = records

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
        record (handed over by an older dispatcher, or while the store did not answer)."""
        with contextlib.suppress(StoreUnavailable):
            trunk = await self._records.held(TRUNK + session_id)
            if trunk is None:
                return 0.0
            # Read or taken in one step in the store, on its clock: asks at once (the edge's retried poll, at any
            # replica) hold one turn, and replicas whose clocks differ say the same wait.
            invites = self._limits.create_limit(f"trunk-invites:{trunk}", await cps_of(trunk), 1)
            return await invites.turn_of(DUE + session_id, RECORD_SECONDS)
        return 0.0
