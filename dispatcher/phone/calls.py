"""A call's bot: start (or claim) the session, tell its bot where the media is, await its socket.

The session starts like any other (`SessionService.start`, so admission, the warm reserve and the
providers' idempotency apply) with transport `websocket`: no room, no offer. Its bot is told,
over the control channel it opened, the path of this call's media socket and a one-time secret
(`media.attach`); it dials that path on the same dispatcher address as its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.websockets import WebSocket

from botchannel.contract import METHOD_MEDIA_ATTACH
from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError
from dispatcher.phone.media_links import MEDIA_PATH, MediaLink, MediaLinks
from dispatcher.sessions.ids import Caller, new_session_id

log = logging.getLogger("dispatcher.phone")

PHONE_TRANSPORT = "websocket"
PHONE_CALLER = "phone"  # the owner of calls no API key asked for (a carrier's signed stream, a webhook)


class Sessions(Protocol):
    async def start(
        self, *, caller: Caller | str, idempotency_key: str | None, body: Mapping[str, Any], wait: bool,
        transport: str | None = None,
    ) -> Any: ...

    async def stop(self, session_id: str) -> Any: ...


@dataclass
class PhoneCall:
    """One call's bot side, as the relay sees it."""

    session_id: str | None = None
    media: MediaLink | None = None
    starting: asyncio.Future[Any] | None = None


class PhoneCalls:
    def __init__(
        self, sessions: Sessions, channels: BotChannels, links: MediaLinks, *, start_wait_seconds: float
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self.links = links
        self._wait = start_wait_seconds

    async def attach(
        self, call: PhoneCall, carrier: str, session_key: str | None, body: Mapping[str, Any],
        owner: Caller | None = None,
    ) -> WebSocket:
        """Starts the call's session and returns its bot's media socket (an `ApiError` otherwise).
        `owner`: the key that asked for the call (`POST /start`), else the phone path's own caller."""
        deadline = time.monotonic() + self._wait
        # The id is known before the start, so a caller who hangs up while it is under way still
        # has their machine stopped (`end`): a start is idempotent on its key, and so is a stop.
        session_key = session_key or f"phone-{secrets.token_urlsafe(16)}"
        owner = owner or Caller.named(PHONE_CALLER)
        call.session_id = session_id = new_session_id(owner.owner_key, session_key)
        # Shielded: a hang-up cancels the wait, never a launch half sent to a provider.
        call.starting = asyncio.ensure_future(
            self._sessions.start(
                caller=owner, idempotency_key=session_key, body=body, wait=False, transport=PHONE_TRANSPORT
            )
        )
        call.starting.add_done_callback(_retrieved)
        await asyncio.shield(call.starting)
        bot = self._channels.link_for(session_id) or await self._channels.wait_link(session_id, _left(deadline))
        if bot is None:
            raise ApiError(504, "start_timeout", f"the call's bot did not dial in within {self._wait:g}s")
        call.media, secret = self.links.expect(session_id)
        await bot.request(
            METHOD_MEDIA_ATTACH,
            {"path": MEDIA_PATH.format(session_id=session_id), "token": secret, "carrier": carrier},
        )
        try:
            return await asyncio.wait_for(asyncio.shield(call.media.socket), _left(deadline))
        except TimeoutError:
            raise ApiError(504, "start_timeout", "the call's bot did not open its media socket in time") from None

    async def end(self, call: PhoneCall, reason: str) -> None:
        """The call is over: release the bot's media route; stop the machine once its bot has
        had a moment to exit by itself (it sees its socket close)."""
        if call.media is not None:
            self.links.forget(call.media)
        if call.session_id is None:
            return
        if call.starting is not None and not call.starting.done():  # hung up during the start
            await asyncio.wait({call.starting}, timeout=self._wait)
        link = self._channels.link_for(call.session_id)
        if link is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), BOT_EXIT_SECONDS)
        try:
            await self._sessions.stop(call.session_id)
        except Exception as exc:  # the reaper ends what is left
            log.warning("phone call %s: stopping its machine failed (%s)", call.session_id, exc)
        log.info("phone call %s ended (%s)", call.session_id, reason)


BOT_EXIT_SECONDS = 5.0


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed start is answered by `attach` (or logged there): not "never retrieved"


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
