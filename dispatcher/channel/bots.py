"""The dispatcher's end of the bot control channel: which bots are connected, and talking to them.

Bots dial in (botchannel/contract.py has the contract; dispatcher/api/routers/bots.py the
WebSocket route), each with the credential of the machine it runs on
(dispatcher/channel/credentials.py). A bot that says hello with a session id is that session's
bot (a cold launch, whose credential names the session); one with none is idle, waiting in this
replica for the reserve to claim it (its credential names the bot id the reserve launched it
with, and is admitted once). A hello that does not match its credential is refused
(dispatcher/channel/admission.py), so one compromised bot reaches its own session and nothing
else. `take_idle` removes
an idle bot from the pool with no `await` in between, so two concurrent starts in this replica
can never take the same one; the bot itself refuses a second `assign`, which makes the claim
safe across replicas too (docs/reserve.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from botchannel.contract import (
    METHOD_PING,
    Hello,
    ProtocolError,
    Reply,
    ReplyError,
    Report,
    Request,
    RequestFailed,
    Welcome,
    encode,
    parse_frame,
)
from dispatcher.channel.admission import HelloRules
from dispatcher.channel.credentials import BotCredentials, BotGrant, bearer
from dispatcher.channel.identity import IdentityOnly, MachineIdentity
from dispatcher.channel.identity_only_gate import PER_ADDRESS, IdentityOnlyGate
from dispatcher.channel.link_hold import LinkHold
from dispatcher.channel.report_caps import ReportCaps
from dispatcher.errors import ApiError
from dispatcher.observability.log_format import SESSION_ID
from dispatcher.observability.log_text import shown
from dispatcher.store.coordination import Claims

log = logging.getLogger("dispatcher.channel.bots")
# How far ahead of this replica's clock a bot's report time may be before it is called out in the log
# (two NTP-synced hosts differ by milliseconds): its time is never used either way.
MAX_REPORT_AHEAD_SECONDS = 5.0

HELLO_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 15.0
# How long an idle link has to answer a ping before a second hello with its identity takes its place.
LIVE_LINK_PING_SECONDS = 5.0
DEFAULT_MAX_CONNECTIONS = 1_000
DEFAULT_MAX_IDENTITY_ONLY = 32


class Socket(Protocol):
    """The little the hub needs from a WebSocket (Starlette's, or a test's)."""

    async def send_text(self, data: str) -> None: ...

    async def receive_text(self) -> str: ...

    async def close(self, code: int = 1000) -> None: ...


class BotRequestFailed(ApiError):
    """A bot refused a request (its status passes through) or could not be asked (502)."""


@dataclass(eq=False)
class BotLink:
    """One connected bot."""

    hello: Hello
    socket: Socket
    session_id: str | None
    expires: int | None = None  # when the bot's credential expires (Unix seconds)
    connected_at: float = field(default_factory=time.monotonic)
    reports: dict[str, Report] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    key_digest: str | None = None  # a bot that dials with its identity alone: its resume key's, as the store keeps it
    machine_uid: str | None = None  # its grant's (an identity-only bot's pod uid, as reviewed at its hello)
    _pending: dict[int, asyncio.Future[Reply]] = field(default_factory=dict)
    asking: set[asyncio.Task[None]] = field(default_factory=set)  # the bot's own requests, being answered
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def machine_id(self) -> str:
        return self.hello.machine_id

    @property
    def hold_id(self) -> str:
        """What its one channel across the replicas is held as (dispatcher/channel/link_hold.py): its machine,
        and the uid its identity named, so a later machine of the same name (a pod made again under its
        Sandbox's name) is not refused for the key an earlier one's bot was welcomed with."""
        return f"{self.machine_id}/{self.machine_uid}" if self.machine_uid else self.machine_id

    async def request(
        self, method: str, params: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> Mapping[str, Any]:
        if self.closed.is_set():
            raise BotRequestFailed(502, "bot_unreachable", "the bot's channel is closed")
        request_id = next(self._ids)
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            async with asyncio.timeout(timeout):  # the send too: a peer that stops reading fills the buffers
                await self.socket.send_text(encode(Request(request_id, method, params)))
                answer = await reply
        except TimeoutError:
            raise BotRequestFailed(502, "bot_timeout", f"the bot did not answer {method} within {timeout:g}s") from None
        except (OSError, RuntimeError, ConnectionError) as exc:
            raise BotRequestFailed(502, "bot_unreachable", f"the bot's channel failed ({type(exc).__name__})") from exc
        finally:
            self._pending.pop(request_id, None)
        if answer.error is not None:
            status = answer.error.status if 400 <= answer.error.status < 500 else 502
            raise BotRequestFailed(status, answer.error.code, answer.error.message)
        return answer.result or {}

    async def answers(self, timeout: float) -> bool:
        """Whether the bot at the far end still answers on this link: any reply is one."""
        try:
            await self.request(METHOD_PING, {}, timeout=timeout)
        except BotRequestFailed as exc:
            return exc.code not in ("bot_timeout", "bot_unreachable")
        return True

    def _resolve(self, reply: Reply) -> None:
        future = self._pending.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)

    async def disconnect(self) -> None:
        """Closes the bot's channel from this side (a retired or replaced bot holds no socket)."""
        self._close()
        with contextlib.suppress(Exception):
            await self.socket.close(1000)

    def _close(self) -> None:
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("channel closed"))


ReportListener = Callable[[BotLink, Report], None]
# A method bots may ask of the dispatcher (the recording's part URLs): the link it came on (its session
# is the link's, never one the bot names) and the request's params → the result, or RequestFailed.
BotMethod = Callable[[BotLink, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
MAX_BOT_REQUESTS = 4  # a bot's requests answered at once; past it, 429
CloseListener = Callable[[BotLink], None]
UnbindListener = Callable[[BotLink, str], None]


class BotChannels:
    def __init__(
        self, credentials: BotCredentials | None, *, claims: Claims, identity: MachineIdentity,
        max_connections: int = DEFAULT_MAX_CONNECTIONS, max_identity_only: int = DEFAULT_MAX_IDENTITY_ONLY,
        identity_only_per_address: int = PER_ADDRESS,
    ) -> None:
        self.credentials = credentials  # None: no channel (a cloud deployment without BOT_CHANNEL_TOKEN)
        self.identity = identity  # the machines provider's check that a hello comes from its machine
        # Set by a provider whose bots dial with their identity alone (Kubernetes agent-sandbox's pool).
        self.identity_only: IdentityOnly | None = None
        self.max_connections = max_connections
        self.connections = 0  # open channel sockets, counted by the route
        # Credential-less sockets whose hello is not admitted yet: their own places, and a rate per address.
        self.identity_only_gate = IdentityOnlyGate(max_identity_only, per_address=identity_only_per_address)
        self._idle: dict[str, BotLink] = {}  # machine id → idle link, oldest first
        self._dialling: dict[str, int] = {}  # pool bot's machine id → its hellos past the grant, not yet ended
        self._by_session: dict[str, BotLink] = {}
        self.rules = HelloRules(claims)  # which hellos are admitted (and what the other replicas saw)
        self.link_hold = LinkHold(claims)  # an identity-only bot's one channel across the replicas
        self._changed = asyncio.Condition()
        self.report_caps = ReportCaps()  # a session's reports passed on, whichever of its bot's connections sent them
        self.report_listeners: list[ReportListener] = []
        self.idle_listeners: list[CloseListener] = []  # an idle bot said hello
        self.session_listeners: list[CloseListener] = []  # a session's bot is now reached here
        self.close_listeners: list[CloseListener] = []
        self.unbind_listeners: list[UnbindListener] = []  # a claim failed: the bot serves not that session
        self.welcome_listeners: list[CloseListener] = []  # a hello was welcomed: the bot takes requests now
        self.handover_listeners: list[CloseListener] = []  # an idle bot was handed its session (`hand_over`)
        self.methods: dict[str, BotMethod] = {}  # what bots may ask (botchannel/recording.py's methods)

    @property
    def enabled(self) -> bool:
        return self.credentials is not None

    def authorized(self, authorization: str | None) -> BotGrant | None:
        """What the presented machine credential opens, or None (refused before the handshake)."""
        presented = bearer(authorization)
        if self.credentials is None or presented is None:
            return None
        return self.credentials.verify(presented)

    def admits_identity_only(self, authorization: str | None) -> bool:
        """No credential at all, where the provider's bots dial with their identity alone: the hello's
        identity decides (`serve` with no grant). A credential presented is never passed over."""
        return self.credentials is not None and self.identity_only is not None and authorization is None

    # --- connected bots -------------------------------------------------------------------

    async def serve(self, socket: Socket, grant: BotGrant | None,
                    admitted: Callable[[], bool] = lambda: True) -> str | None:
        """Runs one (authorized, accepted) bot connection until it closes; with no grant (no
        credential: `admits_identity_only`), the hello's identity is its grant, and `admitted` is
        asked once it is admitted (False: no channel is free for it). Returns why the hello was
        refused, or None once the connection ran."""
        try:
            hello = parse_frame(await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT_SECONDS))
        except (TimeoutError, ProtocolError, OSError, RuntimeError) as exc:
            log.warning("bot channel: no valid hello (%s); closing", type(exc).__name__)
            return "no valid hello"
        except Exception:  # the socket went away before saying anything
            return "no hello"
        if not isinstance(hello, Hello):
            log.warning("bot channel: the first frame was not a hello; closing")
            return "no hello"
        pool_bot = grant is None  # its identity alone (a pool bot's pod token): a copy presents it too
        if grant is None:
            granted = await self._identity_grant(hello)
            if isinstance(granted, str):
                log.warning("bot %s refused: %s", shown(hello.machine_id), shown(granted))
                return granted
            grant = granted
            if grant.kind == "session" and hello.session_id is None:
                # A pool bot whose pod a session's claim holds: that session's bot (its values follow).
                hello = replace(hello, session_id=grant.subject)
            # An idle pool bot's hello is not one-use: its pod's token and its Sandbox's owner, read
            # back at every hello, are the proof, so it may dial again after a drop (a rollout).
            refused = None if grant.kind == "idle" else await self.rules.refusal(grant, hello)
            if refused is None and not admitted():
                refused = "no channel free (BOT_CHANNEL_MAX_CONNECTIONS)"
        else:
            # The machine's identity first: a hello from elsewhere must not spend an idle credential's
            # one use, nor become a session's first (and so only) bot.
            refused = await self.identity.refusal(grant, hello) or await self.rules.refusal(grant, hello)
        if refused is not None:
            log.warning("bot %s (session %s) refused: %s", shown(hello.machine_id), shown(hello.session_id),
                        shown(refused))
            return refused
        link = BotLink(hello=hello, socket=socket, session_id=hello.session_id, expires=grant.expires,
                       machine_uid=grant.machine_uid)
        if pool_bot:
            return await self._serve_pool_bot(link)
        await self._run(link)
        return None

    async def _serve_pool_bot(self, link: BotLink) -> str | None:
        """A hello with its pod's identity alone, which a copy of the token presents too: once its pod's
        bot was welcomed, only a hello with that bot's resume key is admitted, at any replica, and takes
        its channel (dispatcher/channel/link_hold.py); its link is kept while this replica holds that."""
        machine_id = link.machine_id
        self._dialling[machine_id] = self._dialling.get(machine_id, 0) + 1
        try:
            # Without its resume key, a hello never takes the place of a link that still answers here.
            refused = await self._held_already(link.hello) if link.hello.resume is None else None
            admitted = refused or await self.link_hold.admit(link.hold_id, link.hello.resume)
            if isinstance(admitted, str):
                log.warning("bot %s (session %s) refused: %s", shown(machine_id), shown(link.session_id),
                            shown(admitted))
                return admitted
            link.key_digest = admitted.digest
            keeper = asyncio.create_task(self.link_hold.keep(link, admitted.digest, link.hold_id), name="link-hold")
            try:
                await self._run(link, Welcome(resume=admitted.key))
            finally:
                keeper.cancel()  # and ended, so no renewal it sent lands after the let-go below
                await asyncio.gather(keeper, return_exceptions=True)
            return None
        finally:
            # Let go only when no link of this pod is registered or on its way here: an older link's end
            # must not free the hold a newer one just renewed.
            if (left := self._dialling.pop(machine_id) - 1) > 0:
                self._dialling[machine_id] = left
            elif not self._holds(machine_id):
                with contextlib.suppress(Exception):
                    await self.link_hold.let_go(link.hold_id)

    async def _run(self, link: BotLink, welcome: Welcome | None = None) -> None:
        SESSION_ID.set(link.session_id)  # this connection's log lines are its session's
        if link.session_id is not None:
            self.rules.own(link.session_id, link.machine_id, live=self._by_session)
        try:
            await self._register(link)
            await link.socket.send_text(encode(welcome or Welcome()))
            for listener in self.welcome_listeners:
                listener(link)
            await self._read_until_closed(link)
        finally:
            await self._unregister(link)

    async def _read_until_closed(self, link: BotLink) -> None:
        """Reads until the socket ends or this side closed the link (a replaced or dropped link's far end
        may never finish the closing handshake; its place is given up at once all the same)."""
        reading = asyncio.create_task(self._read(link), name=f"bot-read-{link.machine_id}")
        closing = asyncio.create_task(link.closed.wait(), name=f"bot-closed-{link.machine_id}")
        try:
            await asyncio.wait({reading, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, closing):
                task.cancel()
            await asyncio.gather(reading, closing, return_exceptions=True)
            if reading.done() and not reading.cancelled() and (failed := reading.exception()) is not None:
                log.error("bot %s: its channel's reader failed", shown(link.machine_id), exc_info=failed)

    async def _held_already(self, hello: Hello) -> str | None:
        """A pool bot's hello (idle, or its claim's session's) never takes the place of a link of the
        same pod or session that still answers: a copy of the token must not push the real bot off. A
        link that does not answer a ping is a drop this side has not seen yet: the newcomer replaces it."""
        held = self._idle.get(hello.machine_id) if hello.session_id is None else self._by_session.get(hello.session_id)
        if held is not None and not held.closed.is_set() and await held.answers(LIVE_LINK_PING_SECONDS):
            return "this machine's bot is connected already and answers; a second connection with its identity " \
                   "is refused"
        return None

    def _holds(self, machine_id: str) -> bool:
        """Whether a link of `machine_id`'s, idle or serving, is registered here."""
        return machine_id in self._idle or any(link.machine_id == machine_id for link in self._by_session.values())

    async def _identity_grant(self, hello: Hello) -> BotGrant | str:
        if self.identity_only is None:  # `admits_identity_only` let no such socket in
            return "no credential"
        return await self.identity_only.grant(hello)

    async def _read(self, link: BotLink) -> None:
        while True:
            try:
                raw = await link.socket.receive_text()
            except Exception:  # disconnect (Starlette raises WebSocketDisconnect / RuntimeError)
                return
            SESSION_ID.set(link.session_id)  # a claimed reserve bot's lines are its session's from its claim on
            try:
                frame = parse_frame(raw)
            except ProtocolError as exc:
                log.warning("bot %s: malformed frame ignored: %s", shown(link.machine_id), exc)
                continue
            if isinstance(frame, Reply):
                link._resolve(frame)
            elif isinstance(frame, Report):
                if frame.session_id != link.session_id:
                    log.warning("bot %s reported for %s, not its session", shown(link.machine_id),
                                shown(frame.session_id))
                    continue
                if not self.report_caps.tells(link.machine_id, frame):
                    continue
                frame = _timed_on_receipt(link, frame, time.time())
                link.reports.setdefault(frame.event, frame)
                for listener in self.report_listeners:
                    listener(link, frame)
                async with self._changed:  # `wait_until` may be waiting on a report
                    self._changed.notify_all()
            elif isinstance(frame, Request):
                self._ask(link, frame)

    def _ask(self, link: BotLink, request: Request) -> None:
        """Answers a bot's request in a task of its own (a store call must not hold its reports back),
        at most MAX_BOT_REQUESTS of a bot's at once."""
        async def answer() -> None:
            method = self.methods.get(request.method)
            try:
                if method is None:
                    raise RequestFailed(404, "unknown_method", f"the dispatcher has no method {request.method!r}")
                if link.session_id is None:
                    raise RequestFailed(409, "not_assigned", "this bot has no session")
                if len(link.asking) > MAX_BOT_REQUESTS:
                    raise RequestFailed(429, "too_many_requests", f"at most {MAX_BOT_REQUESTS} requests at once")
                reply = Reply(request.id, result=dict(await method(link, request.params)))
            except RequestFailed as exc:
                reply = Reply(request.id, error=ReplyError(exc.status, exc.code, exc.message))
            except Exception:
                log.exception("bot %s: %s failed", shown(link.machine_id), shown(request.method))
                reply = Reply(request.id, error=ReplyError(500, "dispatcher_error", "the dispatcher failed"))
            with contextlib.suppress(Exception):
                await link.socket.send_text(encode(reply))

        task = asyncio.get_running_loop().create_task(answer(), name=f"bot-asks-{request.method}")
        link.asking.add(task)
        task.add_done_callback(link.asking.discard)

    async def _register(self, link: BotLink) -> None:
        replaced = None
        async with self._changed:
            if link.session_id is None:  # one idle link per machine too: the newest
                replaced = self._idle.get(link.machine_id)
                self._idle[link.machine_id] = link
            else:
                # A reconnect after a drop replaces the old link: the newest is the live one, and
                # the old one is closed (one channel per machine, however often it dials).
                replaced = self._by_session.get(link.session_id)
                self._by_session[link.session_id] = link
            self._changed.notify_all()
        if replaced is not None:
            await replaced.disconnect()
        log.info("bot %s connected (%s)", shown(link.machine_id), shown(link.session_id or "idle"))
        listeners = self.idle_listeners if link.session_id is None else self.session_listeners
        for listener in listeners:
            listener(link)

    async def _unregister(self, link: BotLink) -> None:
        SESSION_ID.set(link.session_id)
        link._close()
        async with self._changed:
            if self._idle.get(link.machine_id) is link:
                del self._idle[link.machine_id]
            if link.session_id is not None and self._by_session.get(link.session_id) is link:
                del self._by_session[link.session_id]
            self._changed.notify_all()
        for listener in self.close_listeners:
            listener(link)
        log.info("bot %s disconnected (%s)", shown(link.machine_id), shown(link.session_id or "idle"))

    # --- the reserve's side ---------------------------------------------------------------

    def idle(self) -> list[BotLink]:
        return list(self._idle.values())

    def take_idle(self, usable: Callable[[BotLink], bool] = lambda link: True) -> BotLink | None:
        """Removes and returns the oldest usable idle bot: synchronous, hence atomic here."""
        for machine_id, link in self._idle.items():
            if usable(link) and not link.closed.is_set():
                del self._idle[machine_id]
                return link
        return None

    def bind(self, link: BotLink, session_id: str) -> None:
        """A claimed bot now serves `session_id` (its requests and reports are routed by it)."""
        link.session_id = session_id
        self._by_session[session_id] = link
        self.rules.own(session_id, link.machine_id, live=self._by_session)
        for listener in self.session_listeners:
            listener(link)

    def hand_over(self, machine_id: str, session_id: str) -> BotLink | None:
        """The idle bot `machine_id`, held here, now serves `session_id`, which its provider gave its
        machine (a claim adopted its pod): off the pool (synchronously: never handed twice), bound, and
        the session's values sent (`handover_listeners`). None: it is not idle here."""
        link = self.take_idle(lambda candidate: candidate.machine_id == machine_id)
        if link is None:
            return None
        self.bind(link, session_id)
        for listener in self.handover_listeners:
            listener(link)
        return link

    def unbind(self, link: BotLink, session_id: str) -> None:
        """The bot refused or never answered the assignment: it routes nothing for the session."""
        if self._by_session.get(session_id) is link:
            del self._by_session[session_id]
        self.rules.disown(session_id, link.machine_id)
        for listener in self.unbind_listeners:
            listener(link, session_id)

    # --- a session's bot ------------------------------------------------------------------

    def session_count(self) -> int:
        """Bots in a session on this replica's channel: the reserve's measure of 'active'."""
        return len(self._by_session)

    def sessions(self) -> list[str]:
        """The sessions whose bot holds a channel here."""
        return list(self._by_session)

    def link_for(self, session_id: str) -> BotLink | None:
        return self._by_session.get(session_id)

    def serving(self, machine_id: str) -> bool:
        """Whether bot `machine_id` holds a channel here bound to a session."""
        return any(link.machine_id == machine_id for link in self._by_session.values())

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Waits until `predicate()` holds after a bot connected, left or reported; False at the deadline."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            return predicate()

    async def wait_link(self, session_id: str, timeout: float) -> BotLink | None:
        """The session's bot once it has dialled in (a cold bot takes ~1 s), or None."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: session_id in self._by_session), timeout
                )
            return self._by_session.get(session_id)


def _timed_on_receipt(link: BotLink, report: Report, now: float) -> Report:
    """A report as the dispatcher takes it: at its own clock's time of receipt, never the bot's `t`.
    The bot's time would be the event's time in the timeline and in a signed lifecycle webhook
    (`session.ended`'s `timestamp` and `duration_seconds`), which a receiver may bill or clean up
    by; a hostile bot chose it (a year ahead, a `duration_seconds` of 200 million). Reports are sent
    as they happen (bot/channel_client.py), so the receipt is their time within the channel's delay."""
    if report.t > now + MAX_REPORT_AHEAD_SECONDS:
        log.warning("bot %s reported %s at a time %.0f s ahead of this replica's clock: timed on receipt",
                    shown(link.machine_id), shown(report.event), report.t - now)
    return replace(report, t=round(now, 3))
