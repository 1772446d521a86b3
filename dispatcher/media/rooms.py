"""Rooms: where a cloud session's client and bot meet (Daily). Local sessions have none.

The room URL and both meeting tokens are known from the session id alone (tokens are signed
locally), so `grant` needs no round trip per session and room creation can run concurrently with
the machine launch: `POST /start` costs about one external round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from dispatcher.media.room_options import RoomOptions

NO_OPTIONS = RoomOptions()


@dataclass(frozen=True)
class RoomGrant:
    room_url: str
    bot_token: str = field(repr=False)  # joins as the bot; goes to the machine's environment only
    user_token: str = field(repr=False)  # returned to the client; never a room owner


@dataclass(frozen=True)
class RoomInfo:
    session_id: str
    created_at: float  # epoch seconds


@runtime_checkable
class Rooms(Protocol):
    def options(
        self, room: Mapping[str, Any] | None, token: Mapping[str, Any] | None, max_session_seconds: int,
        *, keeps_audio: bool = False, keeps_transcript: bool = False,
    ) -> RoomOptions:
        """The caller's room and user-token properties, checked against this deployment's limits
        (`ApiError` 422 naming the first one it may not set); `keeps_*`: the session's recording
        policy is `on` for its audio / transcript (a cloud recording needs it)."""
        ...

    async def grant(self, session_id: str, max_session_seconds: int, options: RoomOptions = NO_OPTIONS) -> RoomGrant:
        """The session's room URL and fresh tokens (no room is created)."""
        ...

    async def room_url(self, session_id: str) -> str:
        """The session's room URL (no room is created, no token signed)."""
        ...

    async def create(self, session_id: str, max_session_seconds: int, options: RoomOptions = NO_OPTIONS) -> None:
        """Create the session's room; an existing room of that name is success (idempotent)."""
        ...

    async def bot_present(self, session_id: str) -> bool:
        """Whether the bot is in the room right now (presence)."""
        ...

    async def delete(self, session_id: str) -> None:
        """End the room, ejecting everyone; a missing room is success."""
        ...

    async def list_sessions(self) -> list[RoomInfo]:
        """The rooms of this deployment that exist now, for the reaper."""
        ...

    async def aclose(self) -> None: ...
