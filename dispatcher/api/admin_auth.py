"""The admin surface's credential (`DISPATCHER_ADMIN_KEYS`): changing which bot version callers get
is never something a client's API key can do. A local dispatcher without keys lets its one local
caller in, addressed by a loopback name only: a tunnel's public name (PHONE_PUBLIC_URL), which
keyless mode also answers for carriers, reaches it from anywhere."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from dispatcher.api.dependencies import app_state
from dispatcher.api.hosts import is_loopback_host
from dispatcher.errors import ApiError
from dispatcher.settings import Settings, hash_api_key

LOCAL_ADMIN = "local"
CHANGE_RELEASES = "change releases"


def admin_of(request: Request, purpose: str = CHANGE_RELEASES) -> str:
    """The admin's id for a request (its bearer token, its Host), or 401/403 naming `purpose`."""
    return admin_id(app_state(request).settings, request.headers.get("authorization"),
                    loopback=is_loopback_host(request.headers.get("host", "")), purpose=purpose)


def admin_id(settings: Settings, authorization: str | None, *, loopback: bool, purpose: str = CHANGE_RELEASES) -> str:
    """The admin's non-secret id (for the audit trail), or 401/403 with what to send instead.
    `loopback`: the request named this machine by a loopback name (its Host); `purpose`: what the
    refusals say the key is for ("change releases")."""
    if not settings.admin_key_hashes and not settings.api_key_hashes:
        if loopback:
            return LOCAL_ADMIN  # keyless: only reachable on loopback (Settings refuses anything else)
        raise ApiError(403, "admin_loopback_only", f"a dispatcher without keys lets only its local caller {purpose} "
                       "(http://localhost); to do it through a public name, set "
                       "DISPATCHER_ADMIN_KEYS and DISPATCHER_API_KEYS", extra={})
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <admin key>', one of "
                       "DISPATCHER_ADMIN_KEYS", extra={})
    admin = admin_key(settings, authorization)
    if admin is not None:
        return admin
    presented = hash_api_key(token.strip())
    if not settings.admin_key_hashes:
        raise ApiError(403, "admin_not_configured", "this deployment has no admin keys: set DISPATCHER_ADMIN_KEYS "
                       f"in the dispatcher's environment, from your secret store, to {purpose}", extra={})
    client = any(hmac.compare_digest(presented, known) for known in settings.api_key_hashes)
    if client:
        raise ApiError(403, "admin_key_required", f"a client API key cannot {purpose}: use one of "
                       "DISPATCHER_ADMIN_KEYS", extra={})
    raise ApiError(401, "unauthorized", "invalid admin key", extra={})


def admin_key(settings: Settings, authorization: str | None) -> str | None:
    """The admin's id when `authorization` is `Bearer <one of DISPATCHER_ADMIN_KEYS>`, else None (a
    client's key, or none: for a route both may call, such as `GET /sessions`)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    presented = hash_api_key(token.strip())
    matched = False
    for known in settings.admin_key_hashes:  # no early exit: time does not depend on which key matched
        matched |= hmac.compare_digest(presented, known)
    return "admin-" + hashlib.sha256(b"admin:" + presented).hexdigest()[:12] if matched else None
