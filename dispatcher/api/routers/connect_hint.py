"""`POST /connect` and `POST /`: the way to `POST /start` for a client written against another server.

Several pipecat-examples clients (bot-ready-signalling, instant-voice) post `/connect` to their own
small server, which makes a Daily room and answers its URL and a token. Here that is `POST /start`
(same authentication, same body); a bare 404 left such a client's author guessing, so this route
answers one that names it, to a caller `/start` would admit. Nothing is started. Others (storytelling's
Next.js app) post their own server's root: a bare 405 said no more, so `/` answers the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller

router = APIRouter(responses=ERRORS)

ANSWER_HOLDS = (
    'Its answer holds the Daily room (room_url) and the user\'s token (token; {"transport": "daily"} '
    "on a local dispatcher), or a SmallWebRTC sessionId: rooms are private, so a client joins with that token"
)
USE_START = (
    "this dispatcher has no /connect: POST /start with the same body and API key starts the session. " + ANSWER_HOLDS
)


@router.post("/connect", include_in_schema=False)
async def connect(who: Annotated[Caller, Depends(authenticated)]) -> None:
    raise ApiError(404, "use_start", USE_START)


USE_START_NOT_ROOT = (
    "this dispatcher starts no session at POST /: POST /start with the same body and API key starts one. "
    + ANSWER_HOLDS
)


@router.post("/", include_in_schema=False)
async def root(who: Annotated[Caller, Depends(authenticated)]) -> None:
    raise ApiError(404, "use_start", USE_START_NOT_ROOT)
