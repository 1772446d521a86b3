"""`POST /connect`: the way to `POST /start` for a client written against another server.

Several pipecat-examples clients (bot-ready-signalling, instant-voice) post `/connect` to their own
small server, which makes a Daily room and answers its URL and a token. Here that is `POST /start`
(same authentication, same body); a bare 404 left such a client's author guessing, so this route
answers one that names it, to a caller `/start` would admit. Nothing is started.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller

router = APIRouter(responses=ERRORS)

USE_START = (
    "this dispatcher has no /connect: POST /start with the same body and API key starts the session. "
    'Its answer holds the Daily room (room_url) and the user\'s token (token; {"transport": "daily"} '
    "on a local dispatcher), or a SmallWebRTC sessionId: rooms are private, so a client joins with that token"
)


@router.post("/connect", include_in_schema=False)
async def connect(who: Annotated[Caller, Depends(authenticated)]) -> None:
    raise ApiError(404, "use_start", USE_START)
