"""A campaign checked, then written (`POST /campaigns`), and rows added to one (`POST /campaigns/{id}/rows`).

Checked before anything is kept, each refusal naming the field and the way out: the carrier or trunk exists
here and lets the key call out as `from` to every row's number (as `POST /calls` would check each call), the
pace is within the carrier account's (or trunk's) own, each row's `body` within `POST /calls`' bound, the rows
within `MAX_ROWS`. A number on the do-not-call list (CALLS_DO_NOT_CALL) is kept as a row `skipped`, counted,
never placed (the worker checks the list again before each call: a number listed since is skipped then)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from dispatcher.api.call_order import carrier_of, trunk_calls_of
from dispatcher.api.call_place import check_policy, dialer_of
from dispatcher.api.call_schemas import CallRequest
from dispatcher.api.state import AppState
from dispatcher.api.utf8_bodies import utf8_only
from dispatcher.campaigns.schemas import DO_NOT_CALL, MAX_ROWS, CampaignRequest, CampaignRow
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller
from dispatcher.store.campaign_book import RUNNING, STOPPED, DuplicateNumber, Limits, OverLimit


def new_campaign_id() -> str:
    return f"cmp_{secrets.token_hex(8)}"


async def create_campaign(state: AppState, who: Caller, request: CampaignRequest,
                          campaign_id: str | None = None) -> tuple[str, str]:
    """The new campaign's id and status (`running`, `stopped`, or `finished` when every row was skipped)."""
    first = CallRequest.model_validate({"to": request.rows[0].to, "from": request.caller_id, "trunk": request.trunk,
                                        "carrier": request.carrier, "voicemail": request.voicemail})
    carrier = carrier_of(first)
    caller = who.name or who.id
    if carrier == "sip":
        trunk = await trunk_calls_of(state).trunk(str(request.trunk))
        trunk.check_caller(caller)
        most, whose = trunk.cps, f"trunk {trunk.name!r}'s `cps`"
    else:
        dialer = dialer_of(state, carrier)
        most, whose = dialer.settings.calls_per_second, f"{dialer.setting_prefix}_CALLS_PER_SECOND"
    pace = request.pace if request.pace is not None else most
    if pace > most:
        raise ApiError(422, "pace_above_carrier", f"`pace` {pace:g} is above the {whose} ({most:g} calls a second), "
                       f"which holds across every replica: give a `pace` of at most {most:g}, or leave it out")
    _check_rows(state, who, request.rows, carrier, request.caller_id, 0)
    campaign_id = campaign_id or new_campaign_id()
    spec = {"name": request.name, "from": request.caller_id, "carrier": carrier, "trunk": request.trunk,
            "voicemail": request.voicemail, "pace": pace,
            "retry": request.retry.model_dump() if request.retry is not None else None}
    try:
        await state.campaigns.open(campaign_id, {"spec": json.dumps(spec, separators=(",", ":")),
                                                 "created": time.time(), "concurrency": request.concurrency,
                                                 "owner": who.id, **({"owner_name": who.name} if who.name else {})},
                               _limits(state))
    except OverLimit as exc:
        raise _refused(exc) from None
    try:
        await _append(state, campaign_id, request.rows)
    except ApiError:  # none of its rows kept: finished now, so it counts against none of the key's bounds
        await state.campaigns.set_status(campaign_id, STOPPED, time.time())
        raise
    said = await state.campaigns.set_status(campaign_id, RUNNING if request.start else STOPPED, time.time())
    assert said is not None
    return campaign_id, said[0]


async def add_rows(state: AppState, who: Caller, campaign_id: str, spec: dict[str, Any], total: int,
                   rows: Sequence[CampaignRow]) -> int:
    """Rows added to a campaign not finished; its rows in all now."""
    _check_rows(state, who, rows, str(spec["carrier"]), str(spec["from"]), total)
    added = await _append(state, campaign_id, rows)
    if added is None:
        raise ApiError(409, "campaign_finished", f"campaign {campaign_id} has finished: rows are added to a campaign "
                       "still running or stopped; create another")
    return added


def _limits(state: AppState) -> Limits:
    settings = state.campaign_settings
    return Limits(live=settings.max_live_per_key, key_rows=settings.max_rows_per_key, rows=MAX_ROWS)


def _refused(exc: OverLimit) -> ApiError:
    if exc.which == "live":
        return ApiError(429, "too_many_campaigns", f"this key has {exc.have} campaigns not finished, the most it may "
                        f"have (CAMPAIGN_MAX_LIVE_PER_KEY={exc.most}): add rows to one of them, or stop one for good "
                        "by letting it finish, then create another", retry_after=60)
    if exc.which == "key_rows":
        return ApiError(429, "too_many_rows_kept", f"this key's campaigns hold {exc.have} rows, and at most {exc.most} "
                        "are kept (CAMPAIGN_MAX_ROWS_PER_KEY), finished campaigns' included until their records "
                        "expire 30 days after their last rows: ask for fewer rows, or later", retry_after=3600)
    return ApiError(422, "too_many_rows", f"a campaign calls at most {exc.most} rows ({exc.have} already): split "
                    "the list into several campaigns")


def _too_many_rows(before: int, asked: int) -> ApiError:
    return ApiError(422, "too_many_rows", f"a campaign calls at most {MAX_ROWS} rows ({before} already, "
                    f"{asked} more asked): split the list into several campaigns")


def _check_rows(state: AppState, who: Caller, rows: Sequence[CampaignRow], carrier: str, caller_id: str,
                before: int) -> None:
    if before + len(rows) > MAX_ROWS:  # at once, before the rows are checked; the store checks it again as it writes
        raise _too_many_rows(before, len(rows))
    utf8_only([row.model_dump(exclude_none=True) for row in rows], "the campaign's rows")
    first: dict[str, int] = {}
    for n, row in enumerate(rows):
        if (earlier := first.setdefault(row.to, n)) != n:
            raise ApiError(422, "duplicate_number", f"rows[{n}] ({row.to}) repeats rows[{earlier}]: a campaign calls "
                           "a number once; leave the repeat out (or put both rows' data in one)")
    bound = state.settings.max_body_bytes
    dialer = dialer_of(state, carrier) if carrier != "sip" else None
    for n, row in enumerate(rows):
        if row.body is not None and len(json.dumps(row.body, separators=(",", ":")).encode()) > bound:
            raise ApiError(413, "body_too_large", f"rows[{n}].body exceeds {bound} bytes as JSON (each call's `body` "
                           "rides in its stream's token): keep a row's data small, an id the bot looks up")
        if dialer is not None:
            try:  # the carrier's policy, as `POST /calls` checks each call: refused now, not row by row later
                check_policy(dialer, who.name or who.id, row.to, caller_id)
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"rows[{n}] ({row.to}): {exc.message}") from None


async def _append(state: AppState, campaign_id: str, rows: Sequence[CampaignRow]) -> int | None:
    skip = state.campaign_settings.do_not_call
    calls = [row.model_dump(exclude_none=True) for row in rows]
    states = [{"status": "skipped", "outcome": "skipped", "detail": DO_NOT_CALL} if row.to in skip
              else {"status": "pending", "attempts": 0} for row in rows]
    ready = [row.to not in skip for row in rows]
    try:
        return await state.campaigns.append(campaign_id, calls, states, ready, ready.count(False), _limits(state))
    except OverLimit as exc:
        if exc.which == "rows":
            raise _too_many_rows(exc.have, len(rows)) from None
        raise _refused(exc) from None
    except DuplicateNumber as exc:
        raise ApiError(422, "duplicate_number", f"{exc.number} is in the campaign already (its row {int(exc.row)}): a "
                       "campaign calls a number once; leave it out (none of these rows were added)") from None
