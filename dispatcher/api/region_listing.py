"""`GET /sessions` with several regions: every region's page asked at once (each peer's request
signed and relayed as a session's is, dispatcher/regions/relay.py), merged newest first.

A peer's answer is read within `FANOUT_SECONDS` and `MAX_ANSWER_BYTES`; a peer that is down, slow
or answers anything but a listing is named in `unreachable_regions` and left out of this page and
the pages after it (so following the cursor ends). A session is shown only once no region can
still have a newer one unread: a region whose filtered page stopped short (`next_cursor`) holds
back the others' older sessions to a later page. The cursor is every region's own, in one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from botchannel.json_input import parse_json
from dispatcher.api.state import AppState
from dispatcher.regions.relay import RegionUnreachable

FANOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 1_000_000  # 100 sessions are ~30 KB
PREFIX = "r1."  # a cursor over several regions
# A region's own cursor is URL-safe base64 of a short position ("" before its first page); anything
# else was not made here, and would go on, escaped or not, in a query to a peer.
_REGION_CURSOR = re.compile(r"[A-Za-z0-9_-]{0,128}")

Page = tuple[list[dict[str, Any]], str | None]  # a region's sessions, newest first, and its own next cursor
Local = Callable[[str | None], Awaitable[Page]]  # this region's page below its own cursor


def is_regional(cursor: str | None) -> bool:
    return cursor is not None and cursor.startswith(PREFIX)


def decode(cursor: str | None, names: list[str]) -> dict[str, str | None] | None:
    """Each region's own cursor ("": its first page; None: done); None when `cursor` is not one."""
    if cursor is None:
        return dict.fromkeys(names, "")
    try:
        # Strict UTF-8 first: the parser alone would read UTF-16 and a surrogate's bytes, which no
        # peer's query can carry on.
        given = parse_json(base64.urlsafe_b64decode(cursor[len(PREFIX):] + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(given, dict) or not all(v is None or (isinstance(v, str) and _REGION_CURSOR.fullmatch(v))
                                              for v in given.values()):
        return None
    return {name: given.get(name) for name in names}


def _encode(cursors: Mapping[str, str | None]) -> str:
    text = json.dumps(dict(cursors), separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + base64.urlsafe_b64encode(text).decode().rstrip("=")


def _position(item: Mapping[str, Any]) -> tuple[int, str]:
    return int(float(item.get("created") or 0) * 1000), str(item.get("session_id"))


async def everywhere(state: AppState, query: Mapping[str, str], headers: Mapping[str, str],
                     cursors: dict[str, str | None], limit: int, local: Local,
                     position_of: Callable[[str], tuple[int, str] | None],
                     cursor_at: Callable[[tuple[int, str]], str]) -> dict[str, Any]:
    """The merged page: `{"sessions", "next_cursor", "unreachable_regions"}`. `position_of`: where a
    region's own cursor stands; `cursor_at`: a region's own cursor below a position."""
    here = state.settings.region
    asked = {name: cursor for name, cursor in cursors.items() if cursor is not None}
    answers = await asyncio.gather(*(
        local(cursor or None) if name == here else _peer_page(state, name, query, headers, cursor)
        for name, cursor in asked.items()))
    pages = dict(zip(asked, answers, strict=True))
    unreachable = sorted(name for name, page in pages.items() if isinstance(page, str))
    found = {name: page for name, page in pages.items() if not isinstance(page, str)}
    stops = [p for _, next_cursor in found.values() if next_cursor and (p := position_of(next_cursor)) is not None]
    frontier = max(stops) if stops else None
    merged = sorted(((item, name) for name, (items, _) in found.items() for item in items),
                    key=lambda pair: _position(pair[0]), reverse=True)
    # A region's own next cursor is its last session examined: at or above the frontier is safe.
    shown = [(item, name) for item, name in merged if frontier is None or _position(item) >= frontier][:limit]
    after: dict[str, str | None] = {name: None for name in unreachable}  # left out from now on
    for name, (items, next_cursor) in found.items():
        mine = [item for item, region in shown if region == name]
        if len(mine) == len(items):
            after[name] = next_cursor
        elif mine:
            after[name] = cursor_at(_position(mine[-1]))
        else:
            after[name] = asked[name]
    done = all(cursor is None for cursor in after.values())
    return {"sessions": [item for item, _ in shown], "next_cursor": None if done else _encode(after),
            "unreachable_regions": [{"region": name, "problem": pages[name]} for name in unreachable]}


async def _peer_page(state: AppState, region: str, query: Mapping[str, str], headers: Mapping[str, str],
                     cursor: str) -> Page | str:
    """A peer's page, or what went wrong (a sentence)."""
    sent = {k: v for k, v in query.items() if k != "cursor"} | ({"cursor": cursor} if cursor else {})
    listing = await peer_json(state, region, "/sessions", sent, headers)
    if isinstance(listing, str):
        return listing
    if not isinstance(listing.get("sessions"), list):
        return "it answered HTTP 200, not a listing"
    next_cursor = listing.get("next_cursor")
    items = [item for item in listing["sessions"] if isinstance(item, dict)]
    return items, next_cursor if isinstance(next_cursor, str) else None


async def peer_json(state: AppState, region: str, path: str, query: Mapping[str, str],
                    headers: Mapping[str, str]) -> dict[str, Any] | str:
    """A peer's JSON object answer to `GET path?query` (signed and relayed), within `FANOUT_SECONDS`
    and `MAX_ANSWER_BYTES`, or what went wrong (a sentence)."""
    peer = state.peers.peer(region)
    if peer is None or not peer.reachable:
        return peer.problem if peer is not None and peer.problem else "it does not answer"
    try:
        answer = await state.region_relay.forward(region, peer.url, "GET", path, headers, b"",
                                                  still_reachable=lambda: peer.reachable,
                                                  deadline_seconds=FANOUT_SECONDS, query=urlencode(dict(query)))
    except RegionUnreachable as exc:
        return str(exc)
    try:
        body = b""
        async with asyncio.timeout(FANOUT_SECONDS):
            async for chunk in answer.body:
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    return f"its answer is over {MAX_ANSWER_BYTES} bytes"
    except TimeoutError:
        return f"its answer did not end within {FANOUT_SECONDS:g} s"
    finally:
        answer.close()
    try:
        found = parse_json(body) if answer.status == 200 else None  # nested past the limit: not an answer
    except ValueError:
        found = None
    if not isinstance(found, dict):
        return f"it answered HTTP {answer.status}, not an answer of {path}"
    return found
