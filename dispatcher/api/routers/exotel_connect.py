"""Exotel's Connect applet asking whom to dial, once a call's Voicebot stream has ended.

    GET /phone/exotel/connect/{secret}?CallSid=…   the flow's Connect applet (dynamic URL, Exotel-Version 1.0)

The secret and why: dispatcher/phone/exotel_connect.py. The number is answered only for a CallSid a
transfer was recorded for (dispatcher/phone/exotel_transfers.py), at whichever replica Exotel reaches, to
each GET for it (the applet's Fallback URL too) while its record lives; any other call, a GET after the
transfer gave up waiting, or a store that does not answer gets no number, which sends the flow down its
"We didn't dial anyone" branch. A wrong secret is answered as an unknown path is: a plain 404.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from dispatcher.api.dependencies import app_state
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.phone.exotel_connect import EXOTEL_CALL_SID, PATH, dial, dial_no_one, secret_matches
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")
router = APIRouter(tags=["phone"])


@router.get(PATH + "{secret}", include_in_schema=False)
async def exotel_connect(request: Request, secret: str) -> Utf8JSONResponse:
    phone = app_state(request).phone
    exotel = phone.transfers.exotel
    # A stranger learns nothing here, not even whether this deployment takes Exotel calls: a wrong secret and
    # a deployment without Exotel answer exactly what an unknown path does. Why is for the operator's log.
    if exotel is None:
        log.info("phone: an Exotel Connect applet URL was asked, but EXOTEL_API_KEY and EXOTEL_API_TOKEN are "
                 "unset: answered as no such route")
        raise HTTPException(404)
    if not secret_matches(phone.settings.exotel_basic, secret):
        log.info("phone: an Exotel Connect applet URL with a wrong secret was asked: answered as no such route "
                 "(python -m dispatcher.phone.exotel_connect prints the flow's URL)")
        raise HTTPException(404)
    call_sid = request.query_params.get("CallSid", "")
    if not EXOTEL_CALL_SID.fullmatch(call_sid):
        raise ApiError(400, "invalid_request", "CallSid, the call Exotel asks about, is missing or malformed")
    try:
        answer = await exotel.answer(call_sid)
    except StoreUnavailable:
        log.warning("phone: Exotel asked whom to dial, but the store did not answer: no one is dialled")
        return Utf8JSONResponse(dial_no_one())
    if answer is None:
        log.info("phone: Exotel asked whom to dial for a call with no transfer pending: no one")
        return Utf8JSONResponse(dial_no_one())
    target, time_limit, session_id = answer
    log.info("phone call %s: Exotel's Connect applet fetched the transfer's number", session_id)
    return Utf8JSONResponse(dial(target, time_limit))
