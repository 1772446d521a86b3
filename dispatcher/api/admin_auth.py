"""The admin surface's credential (`DISPATCHER_ADMIN_KEYS`): changing which bot version callers get
is never something a client's API key can do. A local dispatcher without keys lets its one local
caller in, addressed by a loopback name only: a tunnel's public name (PHONE_PUBLIC_URL), which
keyless mode also answers for carriers, reaches it from anywhere."""

from __future__ import annotations

import hashlib
import hmac

from dispatcher.errors import ApiError
from dispatcher.settings import Settings, hash_api_key

LOCAL_ADMIN = "local"


def admin_id(settings: Settings, authorization: str | None, *, loopback: bool) -> str:
    """The admin's non-secret id (for the audit trail), or 401/403 with what to send instead.
    `loopback`: the request named this machine by a loopback name (its Host)."""
    if not settings.admin_key_hashes and not settings.api_key_hashes:
        if loopback:
            return LOCAL_ADMIN  # keyless: only reachable on loopback (Settings refuses anything else)
        raise ApiError(403, "admin_loopback_only", "a dispatcher without keys lets only its local caller change "
                       "releases (http://localhost); to change them through a public name, set "
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
                       "in the dispatcher's environment, from your secret store, to change releases", extra={})
    client = any(hmac.compare_digest(presented, known) for known in settings.api_key_hashes)
    if client:
        raise ApiError(403, "admin_key_required", "a client API key cannot change releases: use one of "
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
