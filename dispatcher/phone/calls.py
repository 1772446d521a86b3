"""A call's bot: start (or claim) the session, tell its bot where the media is, await its socket.

The session starts like any other (`SessionService.start`, so admission, the warm reserve and the
providers' idempotency apply) with transport `websocket`: no room, no offer. Its bot is told,
over the control channel it opened, the path of this call's media socket and a one-time secret
(`media.attach`); it dials that path on the same dispatcher address as its channel.

With several replicas (`REDIS_URL`) the bot's channel may be at another replica: `media.attach`
goes there through the owner relay, and a cold bot whose hello lands elsewhere is looked for there
until the start deadline. Its media socket may land anywhere too: that replica spends the secret in
the store and the call's frames cross through it (the coordination's `CallMedia`:
dispatcher/store/call_lines.py; dispatcher/phone/store_hop.py). One process has no elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dispatcher.observability.tracing as tracing
from botchannel.contract import METHOD_MEDIA_ATTACH
from dispatcher.artifacts.wanted import Wanted
from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError
from dispatcher.observability.sip_end import SIP_INBOUND, TELEPHONY
from dispatcher.phone.media_links import MEDIA_PATH, MediaLink, MediaLinks
from dispatcher.phone.relay import (
    CARRIER_OVER_RATE,
    MAX_FRAMES_PER_SECOND,
    OVER_RATE,
    MediaSocket,
    over_rate_reason,
)
from dispatcher.phone.store_hop import StoreHop
from dispatcher.phone.tokens import fresh_session_key
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.sessions.admission import CAPACITY_RETRY_AFTER_SECONDS
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.key_share import KeyShare
from dispatcher.sessions.timeline import CALLER_HUNG_UP
from dispatcher.store.coordination import CallHandle, CallMedia, KeySessions, Rate
from dispatcher.usage.trunk_line import TrunkLine

log = logging.getLogger("dispatcher.phone")

PHONE_TRANSPORT = "websocket"
STANDING_CALLER = "phone:exotel-basic"  # the calls Exotel's standing credential holds, counted in the store
PHONE_CALLER = "phone"  # the owner of calls no API key asked for (a carrier's signed stream, a webhook)


class Sessions(Protocol):
    async def start(
        self, *, caller: Caller | str, idempotency_key: str | None, body: Mapping[str, Any], wait: bool,
        transport: str | None = None, counted_elsewhere: bool = False, release: str | None = None,
        eval_session: bool = False, recording: Wanted | None = None,
    ) -> Any: ...

    async def stop(self, session_id: str, caller: str | None = None, call_ended_at: float | None = None) -> Any: ...

    def session_id_for(self, owner_key: bytes | str, idempotency_key: str | None) -> str: ...

    @property
    def share(self) -> KeyShare: ...  # each key's share of the sessions


class Timeline(Protocol):
    """dispatcher/sessions/timeline.py's `SessionTimeline`: a session's events."""

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None: ...

    def amend(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        """`note` without telling the timeline's listeners (a later word on an event they were told)."""
        ...


class OwnerRelay(Protocol):
    """dispatcher/channel/remote.py's `StoreRemote`: the answer of the replica holding the bot's channel."""

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float = ...) -> Mapping[str, Any] | None: ...


@dataclass
class PhoneCall:
    """One call's bot side, as the relay sees it."""

    session_id: str | None = None
    media: MediaLink | None = None
    starting: asyncio.Future[Any] | None = None
    elsewhere: CallHandle | None = None  # where the bot's media socket is heard of at another replica
    relayed: bool = False  # the bot's media socket is at another replica
    owner: str | None = None  # the caller the session counts for (its share: dispatcher/sessions/key_share.py)
    standing: bool = False  # counted among the calls Exotel's standing credential holds (`StandingCap`)
    release: str = DEFAULT_RELEASE  # the session's, once it started (its metrics name it)


@dataclass(frozen=True)
class StandingCap:
    """The calls admitted by Exotel's standing credential (Basic, reusable): at most `calls` at once
    for the deployment (EXOTEL_MAX_CALLS), counted in the store as a key's sessions are, so one
    leaked credential cannot hold the whole share of the calls carriers open."""

    sessions: KeySessions
    calls: int
    record_seconds: float  # a record outlives no call: the reaper ends every session by then


class PhoneCalls:
    def __init__(
        self, sessions: Sessions, channels: BotChannels, links: MediaLinks, media: CallMedia, owners: OwnerRelay,
        *, start_wait_seconds: float, timeline: Timeline | None = None,
        max_frames_per_second: int = MAX_FRAMES_PER_SECOND,
        start_rate: Rate | None = None,
        standing_cap: StandingCap | None = None,
    ) -> None:
        self._standing_cap = standing_cap
        self._sessions = sessions
        # The calls carriers open themselves are one caller, held to an API key's start rate
        # (START_RATE_PER_KEY): a standing credential (Exotel's Basic) cannot flood starts.
        self._start_rate = start_rate
        self._channels = channels
        self.links = links
        self.media = media  # a call's media across replicas (one process: always here)
        self._owners = owners
        self._wait = start_wait_seconds
        self._timeline = timeline
        self._max_frames_per_second = max_frames_per_second

    async def take_start(self) -> None:
        """One of the carriers' starts (START_RATE_PER_KEY), or 429 `rate_limited`."""
        if self._start_rate is not None:
            wait = await self._start_rate.take(PHONE_CALLER)
            if wait > 0:
                raise ApiError(429, "rate_limited", "too many calls opened by carriers: START_RATE_PER_KEY",
                               retry_after=wait)

    async def attach(
        self, call: PhoneCall, carrier: str, session_key: str | None, body: Mapping[str, Any],
        owner: Caller | None = None, *, standing: bool = False, handed_from: tuple[str, str] | None = None,
        release: str | None = None, evaluation: bool = False, recording: Wanted | None = None,
        line: TrunkLine | None = None, edge_call: bool = False,
    ) -> MediaSocket:
        """Starts the call's session and returns its bot's media socket (an `ApiError` otherwise).
        `owner`: the key that asked for the call (`POST /start`), else the phone path's own caller.
        `standing`: admitted by Exotel's standing credential (held to `StandingCap`).
        `handed_from`: (the region whose webhook handed the call here, why): its demand is that region's.
        `release`, `evaluation`, `recording`: its start's pin, eval mark and recording wish, carried in its token;
        `line`: a SIP call's trunk and price (its token's, as the SIP edge said it), kept on the session's timeline;
        `edge_call`: a call a SIP edge started with its credential, priced or not, noted there as its edge's."""
        deadline = time.monotonic() + self._wait
        # The id is known before the start, so a caller who hangs up while it is under way still
        # has their machine stopped (`end`): a start is idempotent on its key, and so is a stop.
        session_key = session_key or fresh_session_key()
        if owner is None and handed_from is None:  # a handed call's start was taken when its token was minted
            await self.take_start()
        owner = owner or Caller.named(PHONE_CALLER)
        call.owner = owner.id
        call.session_id = session_id = self._sessions.session_id_for(owner.owner_key, session_key)
        if handed_from is not None:  # the place its token held in the key's share is now the session's
            await self._sessions.share.forget(owner.id, session_id)
        if standing and self._standing_cap is not None:
            cap = self._standing_cap
            if await cap.sessions.hold(STANDING_CALLER, session_id, cap.calls, cap.record_seconds) is not None:
                raise ApiError(429, "at_capacity", f"Exotel's standing credential already holds {cap.calls} calls "
                               "(EXOTEL_MAX_CALLS)", retry_after=CAPACITY_RETRY_AFTER_SECONDS)
            call.standing = True  # given back when the call ends (`end`)
        # Shielded: a hang-up cancels the wait, never a launch half sent to a provider.
        call.starting = asyncio.ensure_future(
            self._sessions.start(
                caller=owner, idempotency_key=session_key, body=body, wait=False, transport=PHONE_TRANSPORT,
                counted_elsewhere=handed_from is not None, release=release, eval_session=evaluation,
                recording=recording,
            )
        )
        call.starting.add_done_callback(_retrieved)
        if handed_from is not None:  # said once the session exists, also for a caller who hung up meanwhile
            call.starting.add_done_callback(lambda started: self._handed_off(started, carrier, *handed_from))
        started = await asyncio.shield(call.starting)
        if line is not None and self._timeline is not None and getattr(started, "created", False):
            self._timeline.note(session_id, TELEPHONY, **line.as_json())  # what its minutes cost (telephony_cost.py)
        elif edge_call and self._timeline is not None and getattr(started, "created", False):
            self._timeline.note(session_id, SIP_INBOUND)  # its end is its edge's to tell (sip_end.py)
        call.release = started.machine.release or DEFAULT_RELEASE
        call.media, secret = self.links.expect(session_id)
        call.elsewhere = elsewhere = await self.media.open(session_id, secret)
        params = {"path": MEDIA_PATH.format(session_id=session_id), "token": secret, "carrier": carrier}
        with tracing.step("phone.media_attach", **{"voicefleet.session.id": session_id}) as span:
            span.set_attribute("voicefleet.phone.bot_channel", await self._send_attach(session_id, params, deadline))
        # Its bot's media socket reaches this replica, or another one (which then says hello).
        with tracing.step("phone.media_socket") as span:
            arrivals: set[asyncio.Future[Any]] = {call.media.socket, elsewhere.hello}
            await asyncio.wait(arrivals, timeout=_left(deadline), return_when=asyncio.FIRST_COMPLETED)
            if call.media.socket.done() and not call.media.socket.cancelled():
                elsewhere.media_here()
                span.set_attribute("voicefleet.phone.media", "direct")
                return call.media.socket.result()
            if elsewhere.hello.done():
                self.links.forget(call.media)  # its secret was spent at the other replica
                call.relayed = True
                span.set_attribute("voicefleet.phone.media", "store")
                return StoreHop(elsewhere.line(), self.media.lease_seconds)
            tracing.failed(span, "start_timeout")
            raise ApiError(504, "start_timeout", "the call's bot did not open its media socket in time")

    def _handed_off(self, started: asyncio.Future[Any], carrier: str, from_region: str, reason: str) -> None:
        """The session's timeline says where its call's webhook arrived and why it was handed here."""
        if started.cancelled() or started.exception() is not None or not getattr(started.result(), "created", False):
            return
        session_id = started.result().machine.session_id
        log.info("phone call %s (%s): handed off from region %s (%s)", session_id, carrier, from_region, reason)
        if self._timeline is not None:
            self._timeline.note(session_id, "handed_off", from_region=from_region, reason=reason, carrier=carrier)

    async def _send_attach(self, session_id: str, params: Mapping[str, Any], deadline: float) -> str:
        """Tells the session's bot where its media is, wherever its channel is, once it has one;
        says where that was ("here", "elsewhere")."""
        pause = FIRST_LOOK_SECONDS
        while True:
            bot = self._channels.link_for(session_id)
            if bot is not None:
                await bot.request(METHOD_MEDIA_ATTACH, params)
                return "here"
            if await self._ask_elsewhere(session_id, params):
                return "elsewhere"  # answered by the bot at the replica holding its channel
            left = _left(deadline)
            if left <= 0:
                raise ApiError(504, "start_timeout", f"the call's bot did not dial in within {self._wait:g}s")
            # A hello here wakes this at once; one at another replica is found at the next look.
            await self._channels.wait_link(session_id, min(pause, left))
            pause = min(pause * 2, LAST_LOOK_SECONDS)

    async def _ask_elsewhere(self, session_id: str, params: Mapping[str, Any]) -> bool:
        """True once the bot, its channel at another replica, answered `media.attach`; False while
        no other replica holds it (yet), or the store does not answer (its hello may come here)."""
        try:
            return await self._owners.ask(session_id, METHOD_MEDIA_ATTACH, params) is not None
        except ApiError as exc:
            if exc.status != 503:
                raise
            return False

    def caller_hung_up(self, call: PhoneCall, carrier: str, at: float, how: str) -> None:
        """The session's timeline says its caller hung up (`caller_hung_up`, when the relay saw it):
        the bot reports that end as its own pipeline finishing (dispatcher/phone/hang_up.py)."""
        if call.session_id is not None and self._timeline is not None:
            self._timeline.note(call.session_id, CALLER_HUNG_UP, at=at, how=how, carrier=carrier)

    async def end(self, call: PhoneCall, reason: str) -> None:
        """The call is over: release the bot's media route; stop the machine once its bot has
        had a moment to exit by itself (it sees its socket close). A side closed for its frame rate
        is the session's timeline's `media_closed`. The stop is the call's clean-up, not a caller's:
        it carries when the call's media ended, which the release judge reads as the call's end."""
        over_at = time.time()
        if reason in OVER_RATE and call.session_id is not None and self._timeline is not None:
            side = "caller" if reason == CARRIER_OVER_RATE else "bot"
            self._timeline.note(call.session_id, "media_closed", side=side, reason="frame_rate",
                                limit=self._max_frames_per_second,
                                detail=over_rate_reason(reason, self._max_frames_per_second))
        if call.media is not None:
            self.links.forget(call.media)
        if call.elsewhere is not None:
            await call.elsewhere.end(reason)  # the replica holding the bot's media socket, if any, hears it
        if call.session_id is None:
            return
        if call.standing and self._standing_cap is not None:
            with contextlib.suppress(Exception):  # else its record ages out (`record_seconds`)
                await self._standing_cap.sessions.release(STANDING_CALLER, [call.session_id])
        if call.starting is not None and not call.starting.done():  # hung up during the start
            await asyncio.wait({call.starting}, timeout=self._wait)
        link = self._channels.link_for(call.session_id)
        if link is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), BOT_EXIT_SECONDS)
        try:
            await self._sessions.stop(call.session_id, caller=call.owner, call_ended_at=over_at)
        except Exception as exc:  # the reaper ends what is left
            log.warning("phone call %s: stopping its machine failed (%s)", call.session_id, exc)
        log.info("phone call %s ended (%s)", call.session_id, reason)


BOT_EXIT_SECONDS = 5.0
# A bot whose hello lands at another replica is looked for there at these intervals.
FIRST_LOOK_SECONDS, LAST_LOOK_SECONDS = 0.05, 0.5


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed start is answered by `attach` (or logged there): not "never retrieved"


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
