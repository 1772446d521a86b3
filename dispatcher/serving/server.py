"""How `python -m dispatcher` serves the app: uvicorn with every connection bounded.

A request must arrive whole within `HEADER_TIMEOUT_SECONDS`, a client that stops reading is cut
after `WRITE_TIMEOUT_SECONDS`, and at most `MAX_CONNECTIONS` are open (never more than half the
descriptors); past the cap a connection nobody is answering makes room, never a bot channel, a
media socket or `/healthz`. The order in which connections give way, and why: docs/security.md
("Slow readers and connection floods are bounded"); the settings: docs/configuration.md.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
import weakref
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from botchannel.contract import MAX_FRAME_BYTES

# The server refuses a request whose head is larger than this, before the app sees it. The app's
# own JSON 431 limit (8 KB) sits below it, so clients normally get the API's error format.
SERVER_MAX_HEAD_BYTES = 16 * 1024


def _plain(status: bytes, text: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(text) + text)


_HEAD_TOO_LARGE = _plain(b"431 Request Header Fields Too Large",
                         b"request head over 16384 bytes: send fewer or shorter headers")
_TRAILERS_REFUSED = _plain(b"400 Bad Request",
                           b"trailers are not accepted: send the chunked body without trailer fields")
_MESSAGE_TOO_LARGE = _plain(b"413 Content Too Large",
                            b"request over its size on the wire: send a body within MAX_REQUEST_BYTES, in fewer chunks")
MAX_PIPELINED = 8  # requests parsed ahead of the one being answered, per connection
# What a client must take of a waiting answer each write deadline (or all of it, if less): asyncio
# pauses the answer at 64 KiB waiting and resumes it at 16 KiB, the 48 KiB a paused one always had
# to take within the deadline.
MIN_TAKEN_BYTES = 48 * 1024
LOG_EVERY_SECONDS = 60.0
_OVER_CAP_BODY = b'{"error":{"code":"overloaded","message":"too many connections: retry in a moment"}}'
_OVER_CAP_HEADERS = [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"connection", b"close"),
                     (b"content-length", b"%d" % len(_OVER_CAP_BODY))]
_OVER_CAP = (b"HTTP/1.1 503 Service Unavailable\r\n" + b"".join(name + b": " + value + b"\r\n"
                                                               for name, value in _OVER_CAP_HEADERS)
             + b"\r\n" + _OVER_CAP_BODY)
# Requests answered whatever the app is working on: the load balancer's health check. The bots'
# channels and media sockets are WebSocket upgrades, which never reach the request cap at all.
ALWAYS_ADMITTED = frozenset({"/healthz"})
# The order connections are closed in to make room (`BoundedHttpProtocol._tiers`).
NO_REQUEST_YET, IDLE, OWED_BODY = 0, 1, 2

log = logging.getLogger("dispatcher.server")


class AcceptFailures(logging.Filter):
    """asyncio logs every failed accept (out of descriptors) as an error with its traceback, and
    retries a second later: one warning line a minute says the same without filling the log."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self) -> None:
        super().__init__()
        self._logged = float("-inf")
        self._since = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.MESSAGE):
            return True
        self._since += 1
        now = time.monotonic()
        if now - self._logged < LOG_EVERY_SECONDS:
            return False
        record.msg, record.args = ("could not accept %d connection(s): out of file descriptors "
                                   "(see MAX_CONNECTIONS; asyncio retries in a second)", (self._since,))
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._logged, self._since = now, 0
        return True


def quiet_accept_failures() -> None:
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptFailures) for f in asyncio_log.filters):
        asyncio_log.addFilter(AcceptFailures())


def connection_cap(configured: int) -> int:
    """`MAX_CONNECTIONS`, or half the process's descriptor limit if that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return configured if soft == resource.RLIM_INFINITY else max(1, min(configured, soft // 2))


def headroom(cap: int) -> int:
    """The connections kept from requests the app works on, for `/healthz` and the bots' dials."""
    return min(cap - 1, max(1, cap // 8))


class _Refused(Exception):
    """Raised in a parser callback: llhttp stops there, and nothing after it is parsed."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on each request's head, a deadline on reading it
    and on a stalled response, and a cap on the connections open at once. (httptools, not h11:
    a sixth less CPU per start, docs/performance.md; llhttp bounds no head, so this does.)"""

    header_timeout: float = 10.0
    write_timeout: float = 30.0
    max_connections: int = 1000
    headroom: int = 125
    _refused = 0
    _refusal_logged = float("-inf")
    _write_stall: asyncio.TimerHandle | None = None
    _waiting_when_watched = 0  # bytes waiting for the client when the write deadline was (re)started
    _armed = 0  # deadlines armed on this connection: only the newest is its pending request's
    # This server's connections that may be closed to make room, by tier (NO_REQUEST_YET, IDLE,
    # OWED_BODY: the first non-empty goes first), each oldest first by when it entered its tier (a
    # dict as an ordered set; each configured protocol class gets its own, uvicorn_config). Not
    # re-ordered by the bytes they send.
    _tiers: tuple[dict[BoundedHttpProtocol, None], ...] = ({}, {}, {})
    _tier: int | None = None  # this connection's, if it is in one
    # The requests the app is running, but `/healthz`'s (each configured class its own).
    _working: set[RequestResponseCycle] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self.app = self._admit

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._evict():
            self._refuse(transport)
            return
        self._track()
        self._arm(self.header_timeout)

    @classmethod
    def _evict(cls) -> bool:
        """Close a connection that is not being answered, to make room for this one: the oldest of
        the first tier that has one."""
        for tier in cls._tiers:
            while tier:
                oldest = next(iter(tier))
                del tier[oldest]
                oldest._tier = None
                if oldest.transport.is_closing() or oldest.transport.get_protocol() is not oldest:
                    continue
                oldest._abort()
                return True
        return False

    def _abort(self) -> None:
        self.transport.abort()  # it is owed nothing worth a reply; abort frees it at once
        self.connections.discard(self)  # uvicorn discards it again when the loss arrives

    # What one connection makes the server hold: a head of at most SERVER_MAX_HEAD_BYTES (while one
    # is incomplete the parser is fed no further than that), no trailers, a message of at most
    # `max_message_bytes` on the wire, and at most MAX_PIPELINED requests parsed ahead of the one
    # being answered (llhttp bounds none of these; h11 bounded the first and parsed no request ahead).
    max_message_bytes: int = 8 * (65536 + SERVER_MAX_HEAD_BYTES)
    _reading_head = True
    _head_bytes = 0  # fed while the head is incomplete (one beginning inside a read: from the next)
    _head_size = 0  # the head's exact size, from the parser's callbacks
    _message_bytes = 0  # fed since the head was whole: the body's, its framing's and trailers'
    _refusal: bytes | None = None  # why the parser was stopped: the answer to write (b"": none, abort)

    def data_received(self, data: bytes) -> None:
        while data:
            if self._reading_head:  # never more than the bound's worth of an incomplete head
                room = SERVER_MAX_HEAD_BYTES + 1 - self._head_bytes
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                piece, data = data, b""
                self._message_bytes += len(piece)
            super().data_received(piece)
            if self._refusal is None and self._reading_head and self._head_bytes > SERVER_MAX_HEAD_BYTES:
                self._refusal = _HEAD_TOO_LARGE
            elif self._refusal is None and self._message_bytes > self.max_message_bytes:
                self._refusal = _MESSAGE_TOO_LARGE
            if self._refusal is not None:
                self._refuse_request()
                return
            if self.transport.is_closing():  # the parser refused the request (uvicorn answered 400)
                return
            upgraded = self.transport.get_protocol()
            if upgraded is not self:  # a WebSocket now: the rest of the read is its
                if data and isinstance(upgraded, asyncio.Protocol):
                    upgraded.data_received(data)
                return
        self._track()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._reading_head:  # a trailer: no route reads one, and uvicorn would add it to the head's
            self._stop(_TRAILERS_REFUSED)
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._reading_head, self._message_bytes = False, 0
        if self._head_size + 32 > SERVER_MAX_HEAD_BYTES:  # 32: the request line's and the end's bytes
            self._stop(_HEAD_TOO_LARGE)  # before a cycle exists: the app never sees it
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED:
            self._stop(b"")  # a client parsing us ahead without reading: no answer owed, none written

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes, self._head_size, self._message_bytes = True, 0, 0, 0

    def _stop(self, answer: bytes) -> None:
        """Stops the parser (uvicorn answers its errors with a 400: `send_400_response` below)."""
        self._refusal = answer
        raise _Refused

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:  # the parser's error is ours
            self._refuse_request()
            return
        super().send_400_response(msg)
        self._watch_writes()

    def handle_websocket_upgrade(self) -> None:
        """An upgrade pipelined behind an answer not yet complete, or not yet taken by the client, is
        refused by aborting: the WebSocket would take the transport from under that answer, whose
        request would then wait for ever (its writes paused, never resumed) and keep its place."""
        if (self.cycle is not None and not self.cycle.response_complete) or self.transport.get_write_buffer_size():
            self._abort()
            return
        super().handle_websocket_upgrade()
        if self.transport.get_protocol() is not self:
            self._forget_upgraded()

    def _forget_upgraded(self) -> None:
        """The connection is a WebSocket's now: its loss reaches that protocol, never this one's
        connection_lost, so what that undoes is undone here. Left, the tier held this protocol, its
        transport and parser for good (8 KB for each WebSocket ever accepted: each call's stream, its
        bot's media socket and channel); out of it, they referred to each other (the parser's callbacks,
        `_admit`), so that only a full collection, hours apart in a dispatcher, freed them."""
        self._track()
        self._unstall()
        self.app = self._app
        self.parser = None  # type: ignore[assignment]

    def _refuse_request(self) -> None:
        if self.transport.is_closing():
            return
        if self._refusal:
            self.transport.write(self._refusal)
            self.transport.close()
            self._watch_writes()
        else:
            self._abort()

    def _tier_now(self) -> int | None:
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return None  # a WebSocket now (bot channel, media): never closed for room
        cycle = self.cycle
        if cycle is None:
            return NO_REQUEST_YET  # its first head is not whole yet
        if cycle.response_complete:
            return IDLE  # between requests (its next head may be partly here)
        if cycle.more_body:
            return OWED_BODY
        return None  # the app is answering it

    def _track(self) -> None:
        """Moves this connection to the tier it is in now (to the back of it), or out of them all."""
        tier = self._tier_now()
        if tier == self._tier:
            return
        if self._tier is not None:
            self._tiers[self._tier].pop(self, None)
        if tier is not None:
            self._tiers[tier][self] = None
        self._tier = tier

    async def _admit(self, scope: Any, receive: Any, send: Any) -> None:
        """Runs each request, unless the app is already working on its share of the cap and none of
        those is still owed its body."""
        if scope["path"] in ALWAYS_ADMITTED:
            await self._app(scope, receive, send)
            return
        working = self._working
        if len(working) >= self.max_connections - self.headroom and not self._abort_oldest_owed_body():
            await send({"type": "http.response.start", "status": 503, "headers": _OVER_CAP_HEADERS})
            await send({"type": "http.response.body", "body": _OVER_CAP_BODY})
            self._count_refusal("request(s) past MAX_CONNECTIONS=%d less its headroom (answered 503)")
            return
        cycle = receive.__self__  # this request's (httptools may have parsed the next one already)
        working.add(cycle)
        try:
            await self._app(scope, receive, send)
        finally:
            working.discard(cycle)

    def _abort_oldest_owed_body(self) -> bool:
        """Abort the oldest request the app is waiting on for its body, and count it out at once
        (its app task ends on the disconnect, later): the request's place is this one's."""
        for owed in self._tiers[OWED_BODY]:
            if owed.cycle in self._working and not owed.transport.is_closing():
                self._tiers[OWED_BODY].pop(owed)
                owed._tier = None
                self._working.discard(owed.cycle)
                owed._abort()
                return True
        return False

    def eof_received(self) -> None:
        """The client is gone: asyncio closes the transport on return. With nothing left to write
        it goes at once, so it stops counting towards the cap now, not at its loss a loop turn
        later: a flood that closes its sockets in bursts and connects again in the same turn would
        otherwise have open connections closed in their place."""
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.get_write_buffer_size():
            self.connections.discard(self)  # uvicorn discards it again when the loss arrives

    def _refuse(self, transport: asyncio.Transport) -> None:
        transport.write(_OVER_CAP)  # a few bytes: the socket's buffer takes them, nothing waits
        transport.close()
        self.connections.discard(self)  # closed at once, as an evicted one: it holds no room
        self._count_refusal("connection(s) past MAX_CONNECTIONS=%d (answered 503)")

    def _count_refusal(self, what: str) -> None:
        cls = type(self)
        cls._refused += 1
        now = time.monotonic()
        if now - cls._refusal_logged >= LOG_EVERY_SECONDS:
            log.warning("refused %d " + what, cls._refused, self.max_connections)
            cls._refused, cls._refusal_logged = 0, now

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._watch_writes()  # what is left (under the low-water mark) must still reach the client

    def connection_lost(self, exc: Exception | None) -> None:
        self.app = self._app  # `_admit`, bound to this connection, made it a cycle the collector must find
        self._unstall()
        if self._tier is not None:
            self._tiers[self._tier].pop(self, None)
            self._tier = None
        super().connection_lost(exc)

    def _unstall(self) -> None:
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None

    def _watch_writes(self) -> None:
        """(Re)starts the write deadline from now if bytes wait for the client: while paused, after
        a pause, after each complete answer (below the high-water mark no pause arms it) and after a
        refusal's close. Closing or not: asyncio's close() waits for the buffer to drain, for ever
        if the client never reads, and a closing connection is never closed for room."""
        self._unstall()
        waiting = self.transport.get_write_buffer_size()
        if waiting and self.transport.get_protocol() is self:
            self._waiting_when_watched = waiting
            self._write_stall = self.loop.call_later(self.write_timeout, self._stalled)

    def _stalled(self) -> None:
        """`write_timeout` passed with bytes waiting: a client that took its share since (all that
        waited, or MIN_TAKEN_BYTES) gets another; one that took less is aborted, so a trickle of a
        few bytes a deadline cannot hold an answer, and its place among the requests, for hours."""
        self._write_stall = None
        if self.transport.get_protocol() is not self:
            return  # a WebSocket now, with its own pings
        waiting = self.transport.get_write_buffer_size()
        taken = self._waiting_when_watched - waiting
        if waiting and taken < min(self._waiting_when_watched, MIN_TAKEN_BYTES):
            self.transport.abort()  # not close(): that would wait for the client to read the buffer first
        else:
            self._watch_writes()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_writes()  # this answer's own deadline, not one left from an earlier answer
        if not self.transport.is_closing():  # the next request on this connection: idle, then its own deadline
            self._arm(self.timeout_keep_alive + self.header_timeout)
        self._track()  # between requests (or a pipelined one under way)

    def _arm(self, seconds: float) -> None:
        # By weak reference: a pending deadline keeps neither a closed connection nor its request alive.
        self._armed += 1
        self.loop.call_later(seconds, _deadline_passed, weakref.ref(self),
                             None if self.cycle is None else weakref.ref(self.cycle), self._armed)

    def _deadline_passed(self, cycle_when_armed: Any, armed: int) -> None:
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket (the bot channel has its own pings)
        if armed != self._armed:
            # A later answer armed the deadline of the request after it: this one's request was
            # answered. (Acting on it closed a kept-alive connection whose next request's body was
            # still on its way: "Server disconnected without sending a response".)
            return
        # No request since (a request pipelined behind the last is not waiting for its head).
        waiting_for_head = self.cycle is cycle_when_armed and (self.cycle is None or self.cycle.response_complete)
        if waiting_for_head or self.cycle.more_body:
            self.transport.close()


def _deadline_passed(connection: weakref.ref[BoundedHttpProtocol],
                     cycle: weakref.ref[RequestResponseCycle] | None, armed: int) -> None:
    alive = connection()
    if alive is not None:
        alive._deadline_passed(None if cycle is None else cycle(), armed)


def uvicorn_config(
    app: Any, *, keep_alive_seconds: int, header_timeout_seconds: float, log_level: str,
    graceful_shutdown_seconds: int | None = None, own_log_format: bool = True,
    write_timeout_seconds: float = BoundedHttpProtocol.write_timeout,
    max_connections: int = BoundedHttpProtocol.max_connections,
    max_body_bytes: int = 65536, max_part_bytes: int = 0,
) -> uvicorn.Config:
    """`own_log_format=False`: uvicorn's lines go through the root handler (LOG_FORMAT=json).
    `max_part_bytes`: the largest recording part the dispatcher takes itself (a local folder store's
    parts, each with its Content-Length, so without a chunked body's framing); 0 when it takes none."""
    quiet_accept_failures()
    cap = connection_cap(max_connections)
    protocol = type("ConfiguredHttpProtocol", (BoundedHttpProtocol,), {
        "header_timeout": header_timeout_seconds, "write_timeout": write_timeout_seconds,
        "max_connections": cap, "headroom": headroom(cap), "_tiers": ({}, {}, {}), "_working": set(),
        # The app refuses a body past MAX_REQUEST_BYTES; on the wire a chunked one may take more. A
        # recording's part is larger and has its Content-Length (RequestLimits refuses it without).
        "max_message_bytes": max(8 * (max_body_bytes + SERVER_MAX_HEAD_BYTES), max_part_bytes + SERVER_MAX_HEAD_BYTES),
    })
    return uvicorn.Config(
        app,
        http=protocol,
        ws="websockets-sansio",  # the bot control channel (GET /bots/channel)
        ws_max_size=MAX_FRAME_BYTES,
        # Audio does not deflate, and a compressed frame is bytes to inflate that its sender never
        # sent: 4 MiB of relayed frames for ~5 KiB on the wire, filling any byte bound for free.
        ws_per_message_deflate=False,
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        log_level=log_level,
        log_config=LOGGING_CONFIG if own_log_format else None,
        server_header=False,
        proxy_headers=False,
    )
