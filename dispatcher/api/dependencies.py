"""What every route asks first: the app's state, who is calling, and whether the session is theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller, owned_by


def app_state(connection: HTTPConnection) -> AppState:
    """The app's one state object, for a request or a WebSocket alike."""
    state: AppState = connection.app.state.voicefleet
    return state


async def identified(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller with its owner key (401 otherwise). `async`: FastAPI
    runs a plain `def` dependency in a worker thread, a hop per request; only a runtime key's first
    check at this replica (its scrypt) takes that hop."""
    auth = app_state(request).auth
    return await auth.identify_off_loop(request.headers.get("authorization"), client_address(request))


def client_address(connection: HTTPConnection) -> str:
    """The peer's address (a load balancer's, behind one): whose wrong API secrets are counted together."""
    return connection.client.host if connection.client is not None else ""


async def caller(who: Annotated[Caller, Depends(identified)]) -> str:
    """FastAPI dependency: the authenticated caller's id (401 otherwise). A router's dependency
    whose routes also ask for `identified`: FastAPI checks the key once a request."""
    return who.id


async def owned_id(state: AppState, session_id: str, who: Caller) -> str:
    """`session_id` if the caller's key started it; else 404, as for an id that never existed, with
    no provider call (dispatcher/sessions/ids.py). Limited per key before anything else."""
    await state.read_limit.check(who.id)
    if not owned_by(session_id, who.owner_key):
        raise not_found(session_id)
    return session_id


def not_found(session_id: str) -> ApiError:
    shown = session_id if len(session_id) <= 64 else session_id[:64] + "…"
    return ApiError(404, "not_found", f"no session {shown}")
