"""`POST /phone/whatsapp/eval_calls`: an eval's WhatsApp call (dispatcher/whatsapp/eval_calls.py). The eval
posts its audio-only SDP offer with its own API key, the one WHATSAPP_NUMBERS runs the number's calls as;
the answer is the bot's SDP answer as Meta would get it, and the session it runs in (stopped with
`DELETE /sessions/{id}`, as Meta's `terminate` stops a real call's)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.routers.whatsapp import whatsapp_calls
from dispatcher.api.schemas import ERRORS
from dispatcher.api.utf8_bodies import utf8_only
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller
from dispatcher.whatsapp.eval_calls import EvalCallAsked, eval_call, eval_route
from dispatcher.whatsapp.events import MAX_SDP_CHARS
from dispatcher.whatsapp.settings import MAX_ID_DIGITS

router = APIRouter(tags=["phone"], responses=ERRORS)
DIGITS = rf"^[0-9]{{1,{MAX_ID_DIGITS}}}$"


class EvalCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(max_length=MAX_SDP_CHARS, description="The caller's SDP offer: audio alone, as Meta's")
    type: str = Field(default="offer", pattern="^offer$")
    phone_number_id: str | None = Field(default=None, pattern=DIGITS, description=(
        "The business number called (WHATSAPP_NUMBERS); none: the key's one number"))
    release: str | None = Field(default=None, max_length=128, description=(
        "The release the call runs; none: the number's, else the key's, else the stable one"))
    caller: str = Field(default="15555550100", pattern=DIGITS, description="`from`: the caller's wa_id")
    business: str = Field(default="15555550199", pattern=DIGITS, description="`to`: the business number")
    body: dict[str, Any] = Field(default_factory=dict, description=(
        "More of the bot's body beside `whatsapp` (an eval's marker), at most the start's body size"))


@router.post("/phone/whatsapp/eval_calls", summary="An eval's WhatsApp call, answered to the eval instead of Meta")
async def whatsapp_eval_call(request: Request, who: Annotated[Caller, Depends(authenticated)],
                             asked: EvalCallIn) -> dict[str, Any]:
    calls = whatsapp_calls(request)
    state = app_state(request)
    limit = state.settings.max_body_bytes
    utf8_only(asked.model_dump(exclude_none=True), "the call's JSON")  # as /start: the bot's body is UTF-8
    if "whatsapp" in asked.body:
        raise ApiError(422, "invalid_request", "`body.whatsapp` is the call's own record, written by the "
                       "dispatcher: leave it out")
    if len(json.dumps(asked.body, separators=(",", ":")).encode()) > limit:
        raise ApiError(413, "body_too_large", f"`body` exceeds {limit} bytes as JSON")
    call = EvalCallAsked(asked.sdp, asked.phone_number_id, asked.release, asked.caller, asked.business, asked.body)
    route = eval_route(calls, who, call)  # refused before the key's start rate is taken
    # A start as /start's: its key's start rate taken (START_RATE_PER_KEY). Not `voicefleet keys list`'s count:
    # that is a runtime key's, and only a key of DISPATCHER_API_KEYS may own a number.
    await state.start_limit.check(who.id)
    return await eval_call(calls, who, call, route)
