"""`GET /usage`: ended sessions, their minutes and their cost, per key, release, day or model, from
the rollups kept as sessions end (dispatcher/usage/). A client key reads its own key's usage only;
an admin key every key's, and may name one. With several regions, every region's sums, added."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from dispatcher.api import region_usage
from dispatcher.api.dependencies import app_state
from dispatcher.api.list_reads import invalid, only_known, reader
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.settings import KEY_NAME, KEY_NAME_RULE
from dispatcher.store.client import StoreUnavailable
from dispatcher.usage.rollups import MAX_QUERY_DAYS
from dispatcher.usage.summary import BY, summarise
from dispatcher.usage.usage_count import CALLER_PREFIX, usage_key

router = APIRouter(responses=ERRORS, tags=["usage"])
PARAMETERS = ("by", "since", "until", "key")
_DAYS = re.compile(r"^(\d{1,4})d$")
CALLER_KEY = re.compile(rf"^{re.escape(CALLER_PREFIX)}[a-z0-9-]{{1,64}}$")


@router.get("/usage", summary="Sessions, minutes and cost per key, release, day or model")
async def usage(request: Request) -> dict[str, Any]:
    """Query: `by` (key, release, day, model; default key), `since` (`30d`, or a day `2026-11-01`;
    default 30d), `until` (a day; default today, UTC), `key` (a key name: an admin key's to name; a
    client key reads its own). At most 400 days at once."""
    state = app_state(request)
    admin, who = await reader(request)
    query = request.query_params
    only_known(query, PARAMETERS, "GET /usage")
    by = query.get("by", "key")
    if by not in BY:
        raise invalid(f"by: one of {', '.join(BY)}")
    today = datetime.now(UTC).date()
    last = _day(query["until"], "until") if "until" in query else today
    first = _since(query.get("since", "30d"), last)
    if first > last:
        raise invalid("since: a day on or before `until`")
    if (last - first).days + 1 > MAX_QUERY_DAYS:
        raise invalid(f"at most {MAX_QUERY_DAYS} days at once: ask for a shorter span, or several")
    key = query.get("key")
    if key is not None and not (KEY_NAME.fullmatch(key) or CALLER_KEY.fullmatch(key)):
        raise invalid(f"key: a key name ({KEY_NAME_RULE}), or caller:<id> for a key without one")
    if who is not None:
        own = usage_key(who.name, who.id)
        if key is not None and key != own:
            raise ApiError(403, "admin_key_required", "key: a client key reads its own key's usage only; leave "
                           "`key` out, or ask with an admin key (DISPATCHER_ADMIN_KEYS)", extra={})
        key = own
    if state.usage is None:
        raise ApiError(404, "usage_not_kept", "this deployment keeps no usage", extra={})
    asked = (first, last, by, key)
    grouped = state.usage_answers.get(asked)  # the same query a moment ago: its answer, nothing read
    if grouped is None:
        try:
            with state.usage_slots.taken(who.id if who is not None else f"admin:{admin}", admin=who is None):
                if who is not None:  # a client key's days a minute (dispatcher/api/usage_days.py)
                    await state.usage_days.charge(who.id, (last - first).days + 1)
                grouped = await state.usage.rollups.grouped(first, last, by, key)
        except StoreUnavailable:
            raise ApiError(503, "usage_unavailable", "the usage could not be read (the store did not answer): try "
                           "again once it answers", retry_after=5.0) from None
        state.usage_answers.keep(asked, grouped)
    here = {**summarise(grouped, by), "since": first.isoformat(), "until": last.isoformat(), "key": key,
            "currency": "USD"}
    if not state.peers.by_name or relayed_by(request.scope) is not None:
        return here  # one region, or a peer's question: this region's own sums
    # Several regions, each with its own store: every region's sums, added (dispatcher/api/region_usage.py).
    return await region_usage.everywhere(state, query, request.headers, here)


def _day(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid(f"{name}: a day, e.g. 2026-11-01") from None


def _since(raw: str, last: date) -> date:
    days = _DAYS.fullmatch(raw)
    if days is not None:
        try:
            return last - timedelta(days=int(days.group(1)) - 1)
        except OverflowError:  # before 1 January of year 1, the first day a date holds
            raise invalid(f"since: {raw} back from {last.isoformat()} is before the year 1: ask for a later "
                          "`until`, or fewer days") from None
    return _day(raw, "since (or a number of days, e.g. 30d)")

