"""What a session's timeline notes once, whichever replica is told it and however often: a stop (a
provider's stop answers True for a machine already over, so each DELETE would note one more), a placed
call's outcome (the SIP edge tries its POST again when no answer came in time; a carrier retries its
callback, perhaps at another replica). Enough repeats pushed a call's end out of its timeline.

This process remembers what it noted (as many sessions as its memory keeps timelines of); with several
replicas a once-mark in the store settles the others' too, kept as long as the timeline it guards. One
process takes no mark in its claims: they are every other first claim's too (an Idempotency-Key's, a SIP
edge's record), and would fill up. A store that does not answer notes it, as before the mark."""

from __future__ import annotations

import uuid

from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination
from dispatcher.store.local import LocalCoordination
from dispatcher.store.timelines import KEEP_SECONDS as TIMELINE_KEEP_SECONDS
from dispatcher.store.timelines import MAX_SESSIONS as TIMELINE_SESSIONS
from dispatcher.store.unavailable import StoreUnavailable


class NotedOnce:
    def __init__(self, coordination: Coordination, remember: int = TIMELINE_SESSIONS) -> None:
        self._coordination = coordination
        self._noted: Recent[str, None] = Recent(remember)

    async def first(self, what: str, session_id: str, *, unanswered_notes: bool = True) -> bool:
        """Whether this is the first time `what` is to be noted for `session_id`, at any replica. A store that
        does not answer: True (noted, as before the mark), or StoreUnavailable where `unanswered_notes` is False
        (what a client may say, which a store outage must not let it say again and again)."""
        mark = f"{what}:{session_id}"
        if mark in self._noted:
            return False
        self._noted[mark] = None
        if isinstance(self._coordination, LocalCoordination):
            return True
        try:
            first = await self._coordination.key_holders.first(mark, mine := uuid.uuid4().hex, TIMELINE_KEEP_SECONDS)
        except StoreUnavailable:  # the store, or this process's marks all live (ClaimsFull)
            if unanswered_notes:
                return True
            self._noted.pop(mark, None)  # nothing noted: its retry is asked again
            raise
        except BaseException:  # cancelled, or a fault: nothing noted, so a retry here must not find it marked
            self._noted.pop(mark, None)
            raise
        return first == mine
