"""Campaigns of calls out (docs/phone.md#campaigns): `POST /campaigns` (any key that may place calls, as
`POST /calls`), its progress, stop and resume, rows added, and its results as JSON or CSV. A campaign is its
creator's: another client key is answered 404, as for a session. An admin key, as for sessions
(dispatcher/api/admin_access.py), lists every key's campaigns and reads, stops and resumes any of them, each
act on another key's written to the session audit trail first; the calls are still placed as their creator.
The calls are placed by every replica's worker (dispatcher/campaigns/worker.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from dispatcher.api.admin_auth import admin_key
from dispatcher.api.auth import named_caller_id
from dispatcher.api.call_order import checked_idempotency_key
from dispatcher.api.dependencies import app_state
from dispatcher.api.list_reads import invalid
from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.schemas import ERRORS
from dispatcher.api.state import AppState
from dispatcher.campaigns.create import add_rows, create_campaign, new_campaign_id
from dispatcher.campaigns.replays import first_or_earlier
from dispatcher.campaigns.schemas import CampaignRequest, MoreRows
from dispatcher.campaigns.views import progress, results, results_csv
from dispatcher.campaigns.worker import finished, owner_of
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller
from dispatcher.settings import KEY_NAME, KEY_NAME_RULE
from dispatcher.store.campaign_book import EVERY_KEPT, RUNNING, STOPPED, CampaignRecord
from dispatcher.store.client import StoreUnavailable

router = APIRouter(responses=ERRORS)
log = logging.getLogger(__name__)
MAX_LISTED = 100
# An admin's acts on another key's campaign, as the session audit trail names them.
READ, RESULTS, STOP, RESUME = "campaign.read", "campaign.results", "campaign.stop", "campaign.resume"
MAX_PAGE = 1000
CAMPAIGN_ID = re.compile(r"cmp_[0-9a-f]{16}")


@contextlib.contextmanager
def _store_answers() -> Iterator[None]:
    """A store that does not answer: 503 with Retry-After, never a 500 (a campaign's records are the store's)."""
    try:
        yield
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the deployment's store does not answer, where campaigns are kept; "
                       "try again after Retry-After", retry_after=5) from None


async def _own(state: AppState, who: Caller, campaign_id: str) -> CampaignRecord:
    record = await state.campaigns.read(campaign_id) if CAMPAIGN_ID.fullmatch(campaign_id) else None
    if record is None or record.meta.get("owner") != who.id:
        raise _not_found(campaign_id)
    return record


def _not_found(campaign_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no campaign {campaign_id[:64]!r} of this key (`GET /campaigns` lists them)")


async def _reached(request: Request, who: Caller, campaign_id: str, action: str) -> CampaignRecord:
    """The campaign when this key created it, or when an admin key asks: its act on another key's campaign
    written to the audit trail first (as `action`), refused when it cannot be; else 404."""
    state = app_state(request)
    record = await state.campaigns.read(campaign_id) if CAMPAIGN_ID.fullmatch(campaign_id) else None
    if record is None:
        raise _not_found(campaign_id)
    if record.meta.get("owner") == who.id:
        return record
    admin = admin_key(state.settings, request.headers.get("authorization"))
    if admin is None:
        raise _not_found(campaign_id)
    try:
        await state.session_audit.note({"at": time.time(), "by": admin, "action": action, "campaign_id": campaign_id,
                                        "key_id": record.meta.get("owner"), "region": state.settings.region or None})
    except StoreUnavailable:
        raise ApiError(503, "audit_unavailable", "the audit trail could not be written (the store did not answer), "
                       "so nothing was read or changed: try again once the store answers", retry_after=5.0) from None
    log.info("audit: admin %s: %s of campaign %s", admin, action, campaign_id)
    return record


def _listed(state: AppState, campaign_id: str, record: CampaignRecord) -> dict[str, Any]:
    """A campaign as an admin's list shows it: with its key's name (None: an admin key's, or one removed since)
    and id, as `GET /sessions` shows a session's."""
    owner = record.meta.get("owner")
    name = record.meta.get("owner_name") or (creator.name if owner and (creator := owner_of(state, owner)) else None)
    return {**progress(campaign_id, record), "key": name, "caller": owner}


@router.post("/campaigns", status_code=201, summary="Start a campaign: a list of numbers called, paced")
async def create(request: Request, response: Response, who: Annotated[Caller, Depends(authenticated)],
                 payload: Annotated[CampaignRequest, Body()]) -> dict[str, Any]:
    state = app_state(request)
    key = checked_idempotency_key(request.headers.get("idempotency-key"))
    with _store_answers():
        if key is None:
            return await _created(state, who, payload, new_campaign_id())
        mine = new_campaign_id()
        async with first_or_earlier(state, who, f"create:{key}", mine) as campaign_id:
            if campaign_id == mine:  # the first request with this key
                return await _created(state, who, payload, campaign_id)
        record = await state.campaigns.read(campaign_id)
        if record is None:
            raise ApiError(409, "campaign_being_created", "this Idempotency-Key's campaign is being created by an "
                           "earlier request: ask again in a moment", retry_after=1)
        response.status_code = 200  # the Idempotency-Key's campaign, made before: nothing made now
        return progress(campaign_id, record)


async def _created(state: AppState, who: Caller, payload: CampaignRequest, campaign_id: str) -> dict[str, Any]:
    campaign_id, status = await create_campaign(state, who, payload, campaign_id)
    if status == "finished":  # every row skipped: nothing to call
        await finished(state, state.campaigns, campaign_id)
    return progress(campaign_id, await _own(state, who, campaign_id))


@router.get("/campaigns", summary="This key's campaigns (an admin key: every key's), newest first")
async def listed(
    request: Request, who: Annotated[Caller, Depends(authenticated)],
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED, description="campaigns a page")] = MAX_LISTED,
    offset: Annotated[int, Query(ge=0, le=EVERY_KEPT, description="the last page's `next_offset`")] = 0,
    key: Annotated[str | None, Query(description="an admin key only: one key's campaigns, by its name")] = None,
) -> dict[str, Any]:
    state = app_state(request)
    admin = admin_key(state.settings, request.headers.get("authorization")) is not None
    if key is not None and not admin:
        raise ApiError(403, "admin_key_required", "key: only an admin key (DISPATCHER_ADMIN_KEYS) lists other keys' "
                       "campaigns; leave `key` out to list this key's own", extra={})
    if key is not None and not KEY_NAME.fullmatch(key):
        raise invalid(f"key: a key name ({KEY_NAME_RULE}), as DISPATCHER_API_KEYS names it (name:key)")
    owner = named_caller_id(key) if key is not None else None if admin else who.id
    found = []
    with _store_answers():
        ids = await state.campaigns.listed(owner, limit, offset)
        for campaign_id in ids:
            record = await state.campaigns.read(campaign_id)
            if record is None:  # its records expired: out of the indexes
                await state.campaigns.forget(campaign_id, owner)
            elif admin:
                found.append(_listed(state, campaign_id, record))
            elif record.meta.get("owner") == who.id:
                found.append(progress(campaign_id, record))
    return {"campaigns": found, "next_offset": offset + len(ids) if len(ids) == limit else None}


@router.get("/campaigns/{campaign_id}", summary="A campaign's progress")
async def show(request: Request, campaign_id: str, who: Annotated[Caller, Depends(authenticated)]) -> dict[str, Any]:
    with _store_answers():
        return progress(campaign_id, await _reached(request, who, campaign_id, READ))


@router.post("/campaigns/{campaign_id}/stop", summary="Stop placing a campaign's calls (those under way go on)")
async def stop(request: Request, campaign_id: str, who: Annotated[Caller, Depends(authenticated)]) -> dict[str, Any]:
    return await _set(request, who, campaign_id, STOPPED)


@router.post("/campaigns/{campaign_id}/resume", summary="Place a stopped campaign's calls again")
async def resume(request: Request, campaign_id: str, who: Annotated[Caller, Depends(authenticated)]) -> dict[str, Any]:
    return await _set(request, who, campaign_id, RUNNING)


async def _set(request: Request, who: Caller, campaign_id: str, status: str) -> dict[str, Any]:
    """Only the campaign's status changes: its calls are still placed as its creator (the worker reads the
    owner from the campaign), whoever stopped or resumed it."""
    state = app_state(request)
    with _store_answers():
        await _reached(request, who, campaign_id, STOP if status == STOPPED else RESUME)
        said = await state.campaigns.set_status(campaign_id, status, time.time())
        if said is not None and said[1]:  # nothing was left to call: it finished now
            await finished(state, state.campaigns, campaign_id)
        record = await state.campaigns.read(campaign_id)
        if record is None:
            raise _not_found(campaign_id)
        return progress(campaign_id, record)


@router.post("/campaigns/{campaign_id}/rows", summary="Add rows to a campaign not finished")
async def more_rows(request: Request, campaign_id: str, who: Annotated[Caller, Depends(authenticated)],
                    payload: Annotated[MoreRows, Body()]) -> dict[str, Any]:
    state = app_state(request)
    key = checked_idempotency_key(request.headers.get("idempotency-key"))
    with _store_answers():
        record = await _own(state, who, campaign_id)
        if key is None:
            await _add(state, who, campaign_id, record, payload)
        else:
            request_id = new_campaign_id()  # a value only this request holds
            async with first_or_earlier(state, who, f"rows:{campaign_id}:{key}", request_id) as first:
                if first == request_id:
                    await _add(state, who, campaign_id, record, payload)
        return progress(campaign_id, await _own(state, who, campaign_id))


async def _add(state: AppState, who: Caller, campaign_id: str, record: CampaignRecord, payload: MoreRows) -> None:
    await add_rows(state, who, campaign_id, json.loads(record.meta["spec"]), int(record.meta.get("total", 0)),
                   payload.rows)


@router.get("/campaigns/{campaign_id}/results", summary="A row per number: outcome, session, attempts, duration, cost",
            response_model=None)
async def campaign_results(
    request: Request, campaign_id: str, who: Annotated[Caller, Depends(authenticated)],
    format: Annotated[Literal["json", "csv"], Query(description="`csv`: every row, with a header")] = "json",
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
) -> dict[str, Any] | Response:
    state = app_state(request)
    with _store_answers():
        record = await _reached(request, who, campaign_id, RESULTS)
        total = int(record.meta.get("total", 0))
        if format == "csv":  # read whole before the answer starts: a store gone mid-way is a 503, never a cut file
            table = "".join([line async for line in results_csv(state.campaigns, campaign_id, total)])
            return Response(table, media_type="text/csv",
                            headers={"content-disposition": f'attachment; filename="{campaign_id}.csv"'})
        rows = await results(state.campaigns, campaign_id, offset, limit)
    following = offset + len(rows)
    return {"id": campaign_id, "status": record.meta["status"], "rows": total, "offset": offset, "results": rows,
            "next_offset": following if following < total else None}
