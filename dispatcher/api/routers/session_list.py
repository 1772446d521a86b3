"""`GET /sessions`: the calling key's sessions (an admin key: every key's), newest first, a page at
a time (dispatcher/sessions/listing.py). The caller is proven here: a client key lists its own
name's sessions, an admin key (dispatcher/api/admin_auth.py) every one and may filter by key."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from dispatcher.api import region_listing
from dispatcher.api.auth import named_caller_id
from dispatcher.api.dependencies import app_state
from dispatcher.api.list_reads import invalid, only_known, reader
from dispatcher.api.region_filter import region_filter
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.regions.config import REGION_NAME
from dispatcher.releases.names import is_release_name
from dispatcher.sessions.ids import is_session_id
from dispatcher.sessions.listing import MAX_LIMIT, STATUSES, Filters
from dispatcher.settings import KEY_NAME, KEY_NAME_RULE
from dispatcher.store.session_index import Position

router = APIRouter(responses=ERRORS, tags=["sessions"])
DEFAULT_LIMIT = 20
PARAMETERS = ("limit", "cursor", "status", "release", "region", "key", "since", "failed", "eval")
CURSOR_RULE = "cursor: pass the `next_cursor` of the page before as it was, or leave it out at first"
_CURSOR = re.compile(r"^v1\.(\d{1,16})\.([0-9a-f]{24})$")


@router.get("/sessions", summary="List sessions, newest first")
async def list_sessions(request: Request) -> dict[str, Any]:
    """Query: `limit` (1-100), `cursor` (the last page's `next_cursor`), `status` (active, ended,
    failed), `failed=true`, `release`, `region`, `since` (epoch seconds or ISO 8601), `eval` (true: only
    evals' sessions; false: none of them), `key` (an admin key only: a key name). A filtered page may
    hold fewer than `limit` sessions and still have a `next_cursor`: each page examines a bounded
    number of sessions."""
    state = app_state(request)
    admin, who = await reader(request)
    query = request.query_params
    only_known(query, PARAMETERS, "GET /sessions")
    limit = _limit(query.get("limit"))
    filters = _filters(query.get("status"), query.get("failed"), query.get("release"), query.get("region"),
                       query.get("since"), query.get("eval"))
    filters = replace(filters, region=region_filter(filters.region, state.settings.region, state.peers.by_name))
    caller = who.id if who is not None else None
    if query.get("key") is not None:
        if who is not None:
            raise ApiError(403, "admin_key_required", "key: only an admin key (DISPATCHER_ADMIN_KEYS) lists other "
                           "keys' sessions; leave `key` out to list this key's own", extra={})
        caller = _key(query["key"])


    async def here(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        items, below = await state.sessions.listing.page(caller, filters, limit, _cursor(cursor))
        for item in items:
            if who is not None:  # a client sees its own: which key started it is no news to it
                item.pop("key", None)
                item.pop("caller", None)
        return items, _encode(below) if below is not None else None

    if not state.peers.by_name or relayed_by(request.scope) is not None:
        items, next_cursor = await here(query.get("cursor"))
        return {"sessions": items, "next_cursor": next_cursor, "region": state.settings.region or None}
    # Several regions: each one's page, merged (dispatcher/api/region_listing.py).
    cursors = region_listing.decode(query.get("cursor"), [state.settings.region, *state.peers.regions.peers])
    if cursors is None:
        raise invalid(CURSOR_RULE)
    merged = await region_listing.everywhere(state, query, request.headers, cursors, limit, here,
                                             _position_or_none, _encode)
    return {**merged, "region": state.settings.region}


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit: a whole number from 1 to {MAX_LIMIT}; use `cursor` for the next page")
    return int(raw)


def _filters(status: str | None, failed: str | None, release: str | None, region: str | None,
             since: str | None, evals: str | None = None) -> Filters:
    if status is not None and status not in STATUSES:
        raise invalid(f"status: one of {', '.join(STATUSES)} (GET /sessions/{{id}} tells a session's live state)")
    if failed is not None:
        if failed not in ("true", "false"):
            raise invalid("failed: true or false")
        if failed == "true":
            if status not in (None, "failed"):
                raise invalid(f"failed=true and status={status}: give one of them")
            status = "failed"
    if release is not None and not is_release_name(release):
        raise invalid("release: a release's name, as `voicefleet releases` lists them")
    if region is not None and not REGION_NAME.fullmatch(region):
        raise invalid("region: a region's name, as REGIONS names it")
    if evals not in (None, "true", "false"):
        raise invalid("eval: true (only evals' sessions) or false (none of them)")
    return Filters(status=status, release=release, region=region, since=_since(since) if since is not None else None,
                   eval=None if evals is None else evals == "true")


def _since(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid("since: epoch seconds (1767225600) or ISO 8601 (2026-01-01T00:00:00Z)") from None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def _key(name: str) -> str:
    if not KEY_NAME.fullmatch(name):
        raise invalid(f"key: a key name ({KEY_NAME_RULE}), as DISPATCHER_API_KEYS names it (name:key)")
    return named_caller_id(name)


def _cursor(raw: str | None) -> Position | None:
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found = _CURSOR.fullmatch(text)
    if found is None or not is_session_id(found.group(2)):
        raise invalid(CURSOR_RULE)
    return int(found.group(1)), found.group(2)


def _position_or_none(cursor: str) -> Position | None:
    try:
        return _cursor(cursor)
    except ApiError:
        return None


def _encode(position: Position) -> str:
    return base64.urlsafe_b64encode(f"v1.{position[0]}.{position[1]}".encode()).decode().rstrip("=")

