"""The bot's minimal HTTP server: JSON errors for anything outside its small scope."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest

from bot.http_server import MAX_BODY_BYTES, Handler, JsonHttpServer, Request, Response


async def echo(request: Request) -> Response:
    return Response(200, {"got": request.json_object()})


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """Serves `handler` on POST /echo at a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    server = JsonHttpServer({("POST", "/echo"): handler})
    await server.start(sock)
    try:
        yield sock.getsockname()[1]
    finally:
        await server.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving(echo) as bound:
        yield bound


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, object], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.rpartition(b"\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(body), head


def post(body: bytes, *extra: str) -> bytes:
    headers = "".join(f"{h}\r\n" for h in extra)
    return f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


async def test_json_body_reaches_the_handler(port: int) -> None:
    status, body, _ = await exchange(port, post(b'{"a": 1}'))
    assert (status, body) == (200, {"got": {"a": 1}})


async def test_expect_100_continue_gets_an_interim_response_then_the_answer(port: int) -> None:
    status, body, head = await exchange(port, post(b'{"a": 2}', "Expect: 100-continue"))
    assert head.startswith(b"HTTP/1.1 100 Continue")
    assert body == {"got": {"a": 2}}


async def test_unknown_path_is_a_json_404(port: int) -> None:
    status, body, _ = await exchange(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["error"]["code"]) == (404, "not_found")  # type: ignore[index]


async def test_wrong_method_is_a_json_405(port: int) -> None:
    status, body, _ = await exchange(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")  # type: ignore[index]


async def test_chunked_bodies_are_refused_with_411(port: int) -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    status, body, _ = await exchange(port, raw)
    assert (status, body["error"]["code"]) == (411, "length_required")  # type: ignore[index]


async def test_oversized_bodies_are_refused_with_413(port: int) -> None:
    raw = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    status, body, _ = await exchange(port, raw)
    assert (status, body["error"]["code"]) == (413, "too_large")  # type: ignore[index]


async def test_garbage_request_line_is_a_json_400(port: int) -> None:
    status, body, _ = await exchange(port, b"HELLO\r\n\r\n")
    assert (status, body["error"]["code"]) == (400, "bad_request")  # type: ignore[index]


async def test_a_handler_crash_is_a_json_500_without_traceback() -> None:
    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    async with serving(crash) as port:
        status, body, _ = await exchange(port, post(b"{}"))
    assert (status, body) == (500, {"error": {"code": "internal", "message": "internal error"}})
