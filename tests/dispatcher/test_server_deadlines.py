"""A connection's deadlines (dispatcher/serving/server.py), driven on the server's own protocol
with the deadlines fired by the test. Each answer arms the deadline of the connection's next
request, and a deadline armed by an earlier answer never closes a later request whose body is still
on its way (a client pooling connections, as a load balancer does, lost such a request as "Server
disconnected without sending a response"). An answer left unread is aborted at the write deadline,
even once the connection is closing (asyncio's close() waits for the buffer to drain, for ever); a
client still taking it gets another; each answer starts its own. A WebSocket upgrade pipelined
behind an answer not yet complete is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from uvicorn.server import ServerState

from dispatcher.serving import server
from dispatcher.serving.server import uvicorn_config
from tests.support.waiting import within

GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
POST_HEAD = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
ANSWER = b"HTTP/1.1 200"
UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


async def app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
    """Reads the whole body, then answers 200 (/slow: never; it ends when the client is gone)."""
    if scope["path"] == "/slow":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Transport(asyncio.Transport):
    """The connection's socket, as the protocol sees it: what it writes, whether it closed it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = self.aborted = False
        self.buffered = 0  # bytes written and not yet taken by the client
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered


class Connection:
    """The server's protocol on a Transport; the head deadlines it arms are kept for the test to fire."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        config = uvicorn_config(app, keep_alive_seconds=3600, header_timeout_seconds=3600, log_level="warning")
        config.load()
        self.deadlines: list[tuple[Any, ...]] = []
        self.write_deadlines: list[tuple[asyncio.TimerHandle, Callable[[], None]]] = []
        self.transport = Transport()
        self.protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={},
                                                   _loop=_Recording(loop, self.deadlines, self.write_deadlines))
        self.transport.set_protocol(self.protocol)
        self.protocol.connection_made(self.transport)

    async def answered(self, data: bytes) -> None:
        """Sends `data` (a whole request) and waits for its answer."""
        before = bytes(self.transport.written).count(ANSWER)
        self.protocol.data_received(data)
        assert await within(lambda: bytes(self.transport.written).count(ANSWER) > before, 30) is not None
        await asyncio.sleep(0)  # the answer's completion arms the next deadline

    def fire(self, deadline: tuple[Any, ...]) -> None:
        server._deadline_passed(*deadline)

    def pending_write_deadlines(self) -> list[Callable[[], None]]:
        return [callback for handle, callback in self.write_deadlines if not handle.cancelled()]

    def fire_write_deadline(self) -> None:
        """The one write deadline pending, passed."""
        [due] = self.pending_write_deadlines()
        for handle, callback in self.write_deadlines:
            if callback is due:
                handle.cancel()  # spent
        due()


class _Recording:
    """The running loop, but the head and write deadlines are recorded rather than scheduled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadlines: list[tuple[Any, ...]],
                 write_deadlines: list[tuple[asyncio.TimerHandle, Callable[[], None]]]) -> None:
        self._loop, self._deadlines, self._write_deadlines = loop, deadlines, write_deadlines

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        handle = self._loop.call_later(3600, lambda: None)  # cancellable, never due in a test
        if callback is server._deadline_passed:
            self._deadlines.append(args)
        elif getattr(callback, "__name__", "") == "_stalled":
            self._write_deadlines.append((handle, callback))
        return handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


@pytest.fixture
async def connection() -> AsyncIterator[Connection]:
    opened = Connection(asyncio.get_running_loop())
    yield opened
    opened.protocol.connection_lost(None)  # an app still answering ends with its client gone
    await asyncio.sleep(0)


async def test_an_earlier_answers_deadline_never_closes_a_later_request_awaiting_its_body(
        connection: Connection) -> None:
    await connection.answered(GET)
    await connection.answered(GET)
    first_answers = connection.deadlines[1]  # [0]: armed when it connected; [2]: by the second answer
    connection.protocol.data_received(POST_HEAD)  # a third request: its body is on its way
    await asyncio.sleep(0)
    connection.fire(first_answers)
    assert not connection.transport.closed, "a deadline of a request already answered closed the connection"
    await connection.answered(b"{}")  # the body arrives: the request is answered
    assert not connection.transport.closed


async def test_the_newest_deadline_closes_a_request_whose_body_does_not_come(connection: Connection) -> None:
    await connection.answered(GET)
    connection.protocol.data_received(POST_HEAD)
    await asyncio.sleep(0)
    connection.fire(connection.deadlines[-1])  # the deadline armed by the last answer: this request's
    assert connection.transport.closed


async def test_a_connection_that_sends_no_head_by_its_deadline_is_closed(connection: Connection) -> None:
    connection.fire(connection.deadlines[0])  # armed when it connected
    assert connection.transport.closed


async def test_an_answer_left_unread_is_aborted_at_the_write_deadline_even_once_closing(
        connection: Connection) -> None:
    connection.transport.buffered = 20_000  # the answer's last bytes, under the high-water mark, unread
    await connection.answered(GET)
    connection.transport.close()  # uvicorn's keep-alive timer, or a deadline: close() awaits the drain
    connection.fire_write_deadline()
    assert connection.transport.aborted, "a closing connection with its answer unread was held, not aborted"


async def test_a_client_taking_its_share_gets_another_deadline_and_a_trickle_is_aborted(
        connection: Connection) -> None:
    connection.transport.buffered = 64_000
    connection.protocol.pause_writing()  # a large answer waits past the high-water mark
    connection.transport.buffered = 10_000  # it took 54 KB within the deadline, more than its share
    connection.fire_write_deadline()
    assert not connection.transport.aborted
    connection.transport.buffered = 9_000  # then 1 KB of the 10 KB waiting: a trickle, holding its place
    connection.fire_write_deadline()
    assert connection.transport.aborted


async def test_the_rest_left_after_a_pause_still_has_a_deadline(connection: Connection) -> None:
    connection.transport.buffered = 200_000
    connection.protocol.pause_writing()  # a large answer fills the buffer past its high-water mark
    connection.transport.buffered = 10_000
    connection.protocol.resume_writing()  # taken down to the low-water mark, then no more
    connection.transport.close()
    connection.fire_write_deadline()
    assert connection.transport.aborted


async def test_each_answer_starts_its_own_write_deadline(connection: Connection) -> None:
    connection.transport.buffered = 5_000
    await connection.answered(GET)
    connection.transport.buffered = 0  # taken; then the next answer goes out whole
    await connection.answered(GET)
    assert connection.pending_write_deadlines() == [], "an earlier answer's deadline was left to cut a later one"


async def test_an_answer_the_client_took_arms_no_write_deadline(connection: Connection) -> None:
    await connection.answered(GET)
    assert connection.pending_write_deadlines() == []


async def test_an_upgrade_behind_an_answer_not_yet_complete_is_refused(connection: Connection) -> None:
    connection.protocol.data_received(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await asyncio.sleep(0)
    connection.protocol.data_received(UPGRADE)
    assert connection.transport.aborted


async def test_an_upgrade_after_a_whole_answer_is_a_websocket(connection: Connection) -> None:
    await connection.answered(GET)
    connection.protocol.data_received(UPGRADE)
    assert not connection.transport.closed
    assert connection.transport.protocol is not connection.protocol  # the WebSocket's now
