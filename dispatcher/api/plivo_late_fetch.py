"""A dead Plivo transfer ticket's late fetch (dispatcher/phone/plivo_transfer_url.py): what the call does when
Plivo runs a transfer the dispatcher gave up on, or whose ticket expired.

While the ticket's session lasts, its caller was talking to a bot when the transfer was given up: the call
streams to a bot again (Plivo's fetch moves the call off its stream, so staying put is not on offer). Once
the session is over (its timeline ended, and not by a transfer), there is nobody to give the call back to:
the answer is `<Hangup/>`, never a `<Dial>` to a person for a session already over, nor a new session
nobody asked for. A store that cannot say leaves the call to a bot, as before.
"""

from __future__ import annotations

import logging

from dispatcher.api.state import AppState
from dispatcher.sessions.budget_usage import ENDS
from dispatcher.sessions.timeline import TRANSFERRED
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")


async def session_over(state: AppState, session_id: str) -> bool:
    """Whether the session's timeline, as every replica sees it, says it ended other than by a transfer."""
    try:
        events = await state.sessions.timeline.read_shared(session_id)
    except StoreUnavailable:
        log.warning("phone call %s: the store did not say whether its session is over", session_id)
        return False
    kinds = {str(event.get("event")) for event in events}
    return bool(kinds & set(ENDS)) and TRANSFERRED not in kinds
