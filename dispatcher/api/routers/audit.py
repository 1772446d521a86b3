"""`GET /audit/sessions`: the session audit trail, for an admin key: each read and stop by an admin of
a session another key started (dispatcher/api/admin_access.py), newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from dispatcher.api.admin_auth import admin_of
from dispatcher.api.dependencies import app_state
from dispatcher.api.schemas import ERRORS
from dispatcher.store.coordination import HISTORY_KEPT

router = APIRouter(responses=ERRORS, tags=["sessions"])
READ_THE_AUDIT_TRAIL = "read the audit trail"


async def admitted(request: Request) -> str:
    """The admin's id, or 401/403: a dependency, asked before the query is validated."""
    return admin_of(request, READ_THE_AUDIT_TRAIL)


@router.get("/audit/sessions", summary="Who read or stopped which session not their own, when")
async def session_audit(request: Request, _: Annotated[str, Depends(admitted)],
                        limit: Annotated[int, Query(ge=1, le=HISTORY_KEPT)] = 100) -> dict[str, Any]:
    """Each line: `at` (epoch seconds), `by` (the admin key's id, never the key), `action`
    (`session.read`, `session.timeline`, `session.stop`), `session_id`, `region`."""
    return {"lines": await app_state(request).session_audit.history(limit)}
