"""What the admin-or-client read routes share (`GET /sessions`, `GET /usage`): who reads (an admin
key, else the client key a session route authenticates), counted against the read limit, and a query
checked for parameters the route does not take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import Request

from dispatcher.api.admin_auth import admin_key
from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.sessions import authenticated
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller


async def reader(request: Request) -> tuple[str | None, Caller | None]:
    """(the admin key's id, None) or (None, the client's caller), its read counted."""
    state = app_state(request)
    admin = admin_key(state.settings, request.headers.get("authorization"))
    who = None if admin is not None else await authenticated(request)
    await state.read_limit.check(who.id if who is not None else str(admin))
    return admin, who


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, extra={})


def only_known(query: Mapping[str, str], parameters: Iterable[str], route: str) -> None:
    """422 naming the first parameter `route` does not take, and the ones it does."""
    taken = tuple(parameters)
    if unknown := sorted(set(query) - set(taken)):
        raise invalid(f"unknown parameter {unknown[0]!r}; {route} takes {', '.join(taken)}")
