"""`POST /sip/eval_tokens`: a token that marks one SIP call an eval's and pins its release
(dispatcher/phone/eval_tokens.py). The eval asks with its own key (the number's, which the SIP edge's
start runs as) and sends the token in its INVITE as `X-Voicefleet-Eval`. An unknown release is refused
here (422 `unknown_release`), not when the call rings."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.phone.eval_tokens import HEADER
from dispatcher.sessions.ids import Caller

router = APIRouter(responses=ERRORS)


class EvalTokenAsked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str | None = Field(default=None, max_length=128,
                                description="the release the call runs; none: the key's, else the stable one")
    eval: bool = Field(default=True, description="an eval's call; false: only pinned (a load test's)")


class EvalTokenOut(BaseModel):
    token: str
    header: str = Field(description="the INVITE header that carries it")
    expires_in: int = Field(description="seconds left to place the call")
    release: str | None = None


@router.post("/sip/eval_tokens", status_code=201, response_model=EvalTokenOut, response_model_exclude_none=True,
             summary="A token marking one SIP call an eval's")
async def sip_eval_token(request: Request, who: Annotated[Caller, Depends(authenticated)],
                         asked: EvalTokenAsked | None = None) -> dict[str, Any]:
    state = app_state(request)
    tokens = state.phone.eval_tokens
    if tokens is None:
        raise ApiError(503, "eval_tokens_unavailable", "this dispatcher makes no eval tokens", retry_after=5)
    asked = asked or EvalTokenAsked()
    release = asked.release
    if release is not None:
        state.sessions.releases.choose("", pinned=release, caller_id=who.id)  # unknown: 422 unknown_release
    token, grant = tokens.mint(who.id, release, asked.eval)
    return {"token": token, "header": HEADER, "expires_in": max(0, int(grant.expires - time.time())),
            "release": release}
