"""A WhatsApp call ended at Meta once, whichever replica sees its end first.

A call's session may end at any replica (its bot's channel or a stop there, its time limit, the reaper,
a restart of the replica that answered it): the replica that sees the end finds the call in the book
every replica shares (dispatcher/store/whatsapp_book.py) and, once the call was answered, terminates it
at Meta. The end of a call is decided once across the replicas (`whatsapp:<call id>:over`, the store's
one-time record): whoever takes it first sends the one `reject` or `terminate`, and Meta's own
`terminate` webhook takes it too, so a call Meta ended is never hung up again.

A hang-up is owed in the book before it is sent, and cleared when Meta answers (done, or refused: a
call Meta already ended): one Meta never answered, or one whose replica died before sending it, is
sent again by the sweep every replica runs (`reconcile`), with backoff, until Meta answers or
GIVE_UP_SECONDS have passed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from dispatcher.observability.whatsapp_call import ANSWER
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import OneTimeUse
from dispatcher.store.whatsapp_book import BookedCall, Mark, WhatsAppBook
from dispatcher.whatsapp.graph import GraphCalls, GraphRefused

log = logging.getLogger("dispatcher.whatsapp")

CALL_SECONDS = 2 * 86_400.0  # a call's record outlives any session (their limit is hours)
OVER_SECONDS = CALL_SECONDS  # the call's one-time "over" record, as long
# A hang-up being sent is owed this far ahead: longer than the Graph API's retries take (graph.py's
# BACKOFF deadline plus one request), so the sweep only sends what its replica could not.
SENDING_SECONDS = 30.0
# After an unanswered try, it is sent again after as long as it has been owed (backoff that doubles),
# within these bounds.
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 5.0, 300.0
GIVE_UP_SECONDS = 3_600.0  # Meta ends a call whose media stopped long before this
SWEEP_SECONDS = 5.0
SWEEP_MOST = 50  # owed hang-ups one sweep takes, one claim at a time
SEEN_ENDS = 10_000  # sessions whose end this replica already looked up


def over_key(call_id: str) -> str:
    return f"whatsapp:{call_id}:over"


class HangUps:
    def __init__(self, book: WhatsAppBook, once: OneTimeUse, graph: GraphCalls, timeline: SessionTimeline,
                 clock: Callable[[], float] = time.time, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self._book, self._once, self._graph, self._timeline = book, once, graph, timeline
        self._clock, self._sweep_seconds = clock, sweep_seconds
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def book(self, session_id: str, call_id: str, phone_number_id: str) -> None:
        try:
            await self._book.open(session_id, call_id, phone_number_id, CALL_SECONDS)
        except StoreUnavailable:  # a forgiving book does not raise; a strict one is only noted
            log.warning("whatsapp: call %s not recorded: the store did not answer", call_id)

    async def first_to_end(self, call_id: str) -> bool:
        """Whether this replica decides the call's end (the one `reject` or `terminate` is its to send)."""
        if await self._once.first_use(over_key(call_id), OVER_SECONDS):
            return True
        log.info("whatsapp: call %s is over already (ended by Meta or another replica)", call_id)
        return False

    async def mark(self, session_id: str, mark: Mark) -> BookedCall | None:
        try:
            return await self._book.mark(session_id, mark)
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call not marked %s: the store did not answer", session_id, mark)
            return None

    def seen_end(self, session_id: str) -> bool:
        """True when this replica already looked up `session_id`'s end (a session tells several)."""
        if session_id in self._seen:
            return True
        self._seen[session_id] = None
        if len(self._seen) > SEEN_ENDS:
            self._seen.popitem(last=False)
        return False

    async def session_ended(self, session_id: str) -> None:
        """A session's end, seen at this replica: its call, if answered, is hung up (answered later, the
        accept's own mark finds this one: calls.py). One whose `accept` is being sent is owed a hang-up
        once that accept is done or given up: its answering replica, alive, hangs it up itself and clears
        it; dead (killed while Meta took the accept), the sweep sends it. Unmarked (the store did not
        answer), the session's next end event looks it up again."""
        try:
            call = await self._book.mark(session_id, "ended")
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call not marked ended (the store did not answer): its next end "
                        "event looks again", session_id)
            self._seen.pop(session_id, None)
            return
        if call is None:
            return
        if call.answered:
            await self.hang_up(session_id, call)
        elif call.accepting:
            await self._owe(session_id, self._clock() + SENDING_SECONDS)

    async def owe(self, session_id: str) -> None:
        """The call's `terminate` owed from SENDING_SECONDS ahead, before its end is taken: the sweep sends it
        unless the replica that takes the end gets Meta's answer first (and clears it)."""
        await self._owe(session_id, self._clock() + SENDING_SECONDS)

    async def owe_end(self, session_id: str) -> None:
        """A session's end seen as this replica shuts down: its call is owed a hang-up for the next sweep of
        any replica; nothing is sent to Meta from here. Answered, it is due now; being accepted, once that
        accept is done or given up (as `session_ended` owes it): Meta refuses a terminate before the accept,
        which would close the record, and the accept landing then would leave the call up with nobody owing
        its end."""
        try:
            call = await self._book.mark(session_id, "ended")
        except StoreUnavailable:
            log.warning("whatsapp: session %s ended at shutdown: its call not marked ended (the store did not "
                        "answer)", session_id)
            return
        if call is not None and (call.answered or call.accepting):
            await self._owe(session_id, self._clock() if call.answered else self._clock() + SENDING_SECONDS)

    async def holds(self, session_id: str) -> bool | None:
        """Whether this region holds the call of `session_id` (took its `connect`, and it is not over);
        None when the store cannot say."""
        try:
            return await self._book.holds(session_id)
        except StoreUnavailable:
            return None

    async def hang_up(self, session_id: str, call: BookedCall) -> None:
        """The answered call of a session that ended: terminated at Meta, unless its end was decided already.
        Owed before its end is taken: a replica killed between the two leaves it owed, for the sweep (the
        replica that decided the end clears it once Meta answers)."""
        await self.owe(session_id)
        if await self.first_to_end(call.call_id):
            refused = await self.send(session_id, call, "terminate")
            self._timeline.note(session_id, ANSWER, action="terminate", reason="session_ended", refused=refused)

    async def send(self, session_id: str, call: BookedCall, action: Literal["reject", "terminate"]) -> str | None:
        """Sends the one decided `action`, a `terminate` owed until Meta answers; Meta's refusal, if any. (A
        `reject` is not owed: Meta ends a call nobody answered by itself.)"""
        owed = action == "terminate"
        if owed:
            await self._owe(session_id, self._clock() + SENDING_SECONDS)
        try:
            await self._graph.end(call.phone_number_id, call.call_id, action)
        except GraphRefused as exc:
            if owed and exc.unanswered:  # Meta may never have had it: the sweep sends it again
                log.warning("whatsapp: call %s: %s unanswered (%s): owed, to be sent again", call.call_id, action,
                            exc)
                await self._owe(session_id, self._clock() + FIRST_RETRY_SECONDS)
                return str(exc)[:300]
            log.warning("whatsapp: call %s could not be given %s: %s", call.call_id, action, exc)
            refused: str | None = str(exc)[:300]
        else:
            refused = None
        await self.close(session_id)
        return refused

    async def close(self, session_id: str) -> None:
        try:
            await self._book.close(session_id)
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call's record not removed (the store did not answer)", session_id)

    async def _owe(self, session_id: str, due: float) -> None:
        try:
            await self._book.owe(session_id, due)
        except StoreUnavailable:
            log.warning("whatsapp: session %s: its call's hang-up not recorded as owed (the store did not answer)",
                        session_id)

    async def reconcile(self) -> None:
        """Every replica's sweep: owed hang-ups sent again until Meta answers (runs until cancelled)."""
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
            except Exception:  # the sweep never stops for one bad turn; its cause is logged
                log.exception("whatsapp: the sweep of owed hang-ups failed")

    async def sweep(self) -> None:
        """Owed hang-ups due, each claimed just before it is sent, on the clock then: a claim outlasts the
        one send it covers (SENDING_SECONDS), so two replicas never send one at once. One that fails is
        logged and left to its claim's end; the others go on."""
        for _ in range(SWEEP_MOST):
            now = self._clock()
            try:
                due = await self._book.due(now, now + SENDING_SECONDS, 1)
            except StoreUnavailable:
                return
            if not due:
                return
            for session_id, call in due:
                try:
                    await self._settle(session_id, call, now)
                except Exception:  # one bad entry never stops the sweep; its cause is logged
                    log.exception("whatsapp: session %s: an owed hang-up could not be swept", session_id)

    async def _settle(self, session_id: str, call: BookedCall | None, claimed_at: float) -> None:
        """One owed hang-up, claimed at `claimed_at`: sent again, given up, or forgotten."""
        if call is None:  # its record ran out: nothing left to say to Meta
            await self.close(session_id)
            return
        owed_for = claimed_at - (call.owed_since or claimed_at)
        if owed_for > GIVE_UP_SECONDS:
            log.error("whatsapp: call %s: Meta never answered its terminate in %.0f s: given up", call.call_id,
                      owed_for)
            await self.close(session_id)
            return
        try:
            await self._graph.end(call.phone_number_id, call.call_id, "terminate")
        except GraphRefused as exc:
            if exc.unanswered:  # backoff from the end of this try (a try takes up to SENDING_SECONDS)
                retry = min(MAX_RETRY_SECONDS, max(FIRST_RETRY_SECONDS, owed_for))
                await self._owe(session_id, self._clock() + retry)
                return
            log.info("whatsapp: call %s: an owed terminate refused (%s): the call was over", call.call_id, exc)
        await self.close(session_id)
        self._timeline.note(session_id, ANSWER, action="terminate", reason="reconciled")
