"""An admin key reaches every session, on the record: a read (its status and cost, its timeline) or a
stop of a session another key started is allowed to a holder of DISPATCHER_ADMIN_KEYS and written to
the session audit trail first (who, what, which session, when). A client key still sees only its own
name's sessions: another's is a 404, as an id that never existed. An admin's own sessions (a release's
smoke sessions) are its own: their reads are not audited, their stops are, as every admin's stop.

Written before the answer: a read or stop that could not be recorded (the store down) is refused."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from dispatcher.api.admin_auth import admin_key
from dispatcher.api.dependencies import app_state, not_found
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller, is_session_id, owned_by
from dispatcher.settings import Settings
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger(__name__)

READ = "session.read"
READ_TIMELINE = "session.timeline"
STOP = "session.stop"
TRANSFER = "session.transfer"
# The routes that call `reachable_id`, as (method, what follows /sessions/{id}): a region relays an
# admin's request for one of them to the region holding the session, which records it there.
ADMIN_ROUTES = frozenset({("GET", ""), ("GET", "/timeline"), ("DELETE", "")})


def admin_reaches(settings: Settings, method: str, rest: str, authorization: str | None) -> bool:
    """True for an admin key's request to one of ADMIN_ROUTES (`rest`: the path after the session id)."""
    return (method, rest) in ADMIN_ROUTES and admin_key(settings, authorization) is not None


async def reachable_id(request: Request, session_id: str, who: Caller, action: str,
                       exists: Callable[[str], Awaitable[bool]] | None = None) -> str:
    """`session_id` when the caller's key started it, or when an admin key asks (recorded as `action`);
    else 404. Limited per key before anything else, as every session route is. `exists`: asked
    before the audit line, so an action on a session there never was is 404 and leaves no line."""
    state = app_state(request)
    await state.read_limit.check(who.id)
    admin = admin_key(state.settings, request.headers.get("authorization"))
    if owned_by(session_id, who.owner_key):
        if exists is not None and not await exists(session_id):
            raise not_found(session_id)
        if admin is None or action not in (STOP, TRANSFER):
            return session_id
        # An admin's stop is on the record even of its own session: the stop ends a caller's call, and
        # nothing else says which admin asked (the timeline's stop_requested names nobody).
    elif admin is None or not is_session_id(session_id) or (exists is not None and not await exists(session_id)):
        raise not_found(session_id)
    try:
        await state.session_audit.note({"at": time.time(), "by": admin, "action": action,
                                        "session_id": session_id, "region": state.settings.region or None})
    except StoreUnavailable:
        raise ApiError(503, "audit_unavailable", "the audit trail could not be written (the store did not "
                       "answer), so nothing was read or stopped: try again once the store answers",
                       retry_after=5.0) from None
    log.info("audit: admin %s: %s of session %s", admin, action, session_id)
    return session_id

