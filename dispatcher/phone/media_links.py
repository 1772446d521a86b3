"""Where a call's bot dials in for the call's media: `GET /bots/media/{session_id}` (WebSocket).

The dispatcher tells the session's bot (over its control channel) a URL and a one-time secret for
this session only; the bot dials it, and the call's frames then flow over that socket verbatim.
The secret is random per session, held as a digest, compared in constant time and spent on first
use: a bot can open the media of its own call and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

MEDIA_PATH = "/bots/media/{session_id}"


@dataclass(eq=False)
class MediaLink:
    session_id: str
    token_digest: bytes
    socket: asyncio.Future[WebSocket] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the call is over: the route may return


class MediaLinks:
    def __init__(self) -> None:
        self._waiting: dict[str, MediaLink] = {}

    def expect(self, session_id: str) -> tuple[MediaLink, str]:
        """A pending link for the session's bot, and the secret it must present."""
        token = secrets.token_urlsafe(32)
        link = MediaLink(session_id, hashlib.sha256(token.encode()).digest())
        self._waiting[session_id] = link
        return link, token

    def forget(self, link: MediaLink) -> None:
        if self._waiting.get(link.session_id) is link:
            del self._waiting[link.session_id]
        link.done.set()
        if not link.socket.done():
            link.socket.cancel()

    def claim(self, session_id: str, secret: str | None) -> MediaLink | None:
        """The pending link this secret opens (spent now), or None."""
        link = self._waiting.get(session_id)
        if link is None or secret is None or link.socket.done():
            return None
        if not hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), link.token_digest):
            return None
        del self._waiting[session_id]
        return link

    def __len__(self) -> int:
        return len(self._waiting)


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
