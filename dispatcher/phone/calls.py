"""A call's bot: start (or claim) the session, tell its bot where the media is, await its socket.

The session starts like any other (`SessionService.start`, so admission, the warm reserve and the
providers' idempotency apply) with transport `websocket`: no room, no offer. Its bot is told,
over the control channel it opened, the path of this call's media socket and a one-time secret
(`media.attach`); it dials that path on the same dispatcher address as its channel.

With several replicas (`REDIS_URL`) the bot's channel may be at another replica: `media.attach`
goes there through the owner relay, and a cold bot whose hello lands elsewhere is looked for there
until the start deadline. Its media socket may land anywhere too: that replica spends the secret in
the store and the call's frames cross through it (dispatcher/phone/call_store.py, store_hop.py).
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

from botchannel.contract import METHOD_MEDIA_ATTACH
from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError
from dispatcher.phone.call_store import CallStore
from dispatcher.phone.media_links import MEDIA_PATH, MediaLink, MediaLinks
from dispatcher.phone.relay import MediaSocket
from dispatcher.phone.store_hop import StoreHop
from dispatcher.sessions.ids import Caller, new_session_id
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.media_bus import CallLine

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
    line: CallLine | None = None  # with a store: where the bot's media is heard from another replica
    renewing: asyncio.Task[None] | None = None  # the call's media record, renewed while it lives
    relayed: bool = False  # the bot's media socket is at another replica


class PhoneCalls:
    def __init__(
        self, sessions: Sessions, channels: BotChannels, links: MediaLinks, *, start_wait_seconds: float,
        store: CallStore | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self.links = links
        self._wait = start_wait_seconds
        self.store = store

    async def attach(
        self, call: PhoneCall, carrier: str, session_key: str | None, body: Mapping[str, Any],
        owner: Caller | None = None,
    ) -> MediaSocket:
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
        call.media, secret = self.links.expect(session_id)
        if self.store is not None:
            try:
                call.line, call.renewing = await self.store.open(session_id, secret)
            except StoreUnavailable:  # a bot that dials this replica still takes the call
                log.warning("phone call %s: the store did not answer; its bot is reached here only", session_id)
        params = {"path": MEDIA_PATH.format(session_id=session_id), "token": secret, "carrier": carrier}
        await self._send_attach(session_id, params, deadline)
        arrivals: set[asyncio.Future[Any]] = {call.media.socket}
        if call.line is not None:
            arrivals.add(call.line.hello)  # the bot's media socket reached another replica
        await asyncio.wait(arrivals, timeout=_left(deadline), return_when=asyncio.FIRST_COMPLETED)
        if call.media.socket.done() and not call.media.socket.cancelled():
            if call.line is not None:
                call.line.close("media_here")
            return call.media.socket.result()
        if call.line is not None and call.line.hello.done() and self.store is not None:
            self.links.forget(call.media)  # its secret was spent at the other replica
            call.relayed = True
            return StoreHop(call.line, self.store.lease_seconds)
        raise ApiError(504, "start_timeout", "the call's bot did not open its media socket in time")

    async def _send_attach(self, session_id: str, params: Mapping[str, Any], deadline: float) -> None:
        """Tells the session's bot where its media is, wherever its channel is, once it has one."""
        pause = FIRST_LOOK_SECONDS
        while True:
            bot = self._channels.link_for(session_id)
            if bot is not None:
                await bot.request(METHOD_MEDIA_ATTACH, params)
                return
            if await self._ask_elsewhere(session_id, params):
                return  # answered by the bot at the replica holding its channel
            left = _left(deadline)
            if left <= 0:
                raise ApiError(504, "start_timeout", f"the call's bot did not dial in within {self._wait:g}s")
            # A hello here wakes this at once; one at another replica is found at the next look.
            await self._channels.wait_link(session_id, left if self.store is None else min(pause, left))
            pause = min(pause * 2, LAST_LOOK_SECONDS)

    async def _ask_elsewhere(self, session_id: str, params: Mapping[str, Any]) -> bool:
        """True once the bot, its channel at another replica, answered `media.attach`; False while
        no other replica holds it (yet), or the store does not answer (its hello may come here)."""
        if self.store is None:
            return False
        try:
            return await self.store.owners.ask(session_id, METHOD_MEDIA_ATTACH, params) is not None
        except ApiError as exc:
            if exc.status != 503:
                raise
            return False

    async def end(self, call: PhoneCall, reason: str) -> None:
        """The call is over: release the bot's media route; stop the machine once its bot has
        had a moment to exit by itself (it sees its socket close)."""
        if call.media is not None:
            self.links.forget(call.media)
        if call.line is not None:
            await call.line.finish(reason)  # the replica holding the bot's media socket, if any, hears it
        if call.renewing is not None and call.session_id is not None and self.store is not None:
            await self.store.close(call.session_id, call.renewing)
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
# With a store, a bot whose hello lands at another replica is looked for there at these intervals.
FIRST_LOOK_SECONDS, LAST_LOOK_SECONDS = 0.05, 0.5


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed start is answered by `attach` (or logged there): not "never retrieved"


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
