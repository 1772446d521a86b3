"""A call whose request went out is never taken for one that sent nothing, even when its last error is a failed
connection: aiohttp sends an idempotent request (a PUT: Azure's create) again on a new connection after a reused
one dropped it, and follows a redirect to another address; either new connection may then fail, with the first
request already at the server. Real sockets: a server that serves one keep-alive connection, then stops listening."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dispatcher.outbound.http_client import HttpClient, HttpError
from dispatcher.outbound.http_failure import never_connected
from tests.support.ports import free_port

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"


async def _request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


@pytest.fixture
async def one_connection() -> AsyncIterator[tuple[int, list[bytes]]]:
    """Answers its connection's first request and keeps it open; reads the second whole, then drops the
    connection unanswered. It stops listening once it has that connection: a new one is refused."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.close()
        received.append(await _request(reader))
        writer.write(ANSWER)
        await writer.drain()
        received.append(await _request(reader))
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], received
    server.close()


async def _second_call_failing(port: int, call: Callable[[HttpClient], Awaitable[object]]) -> HttpError:
    """A first call answered on the server's one connection, then `call`, which must fail."""
    client = HttpClient(f"http://127.0.0.1:{port}", timeout=5.0, connect_timeout=1.0)
    try:
        assert (await client.request("GET", "/")).status_code == 200
        with pytest.raises(HttpError) as failed:
            await call(client)
    finally:
        await client.aclose()
    return failed.value


async def test_a_put_sent_then_dropped_is_not_taken_for_unsent_when_its_repeat_cannot_connect(
        one_connection: tuple[int, list[bytes]]) -> None:
    port, received = one_connection
    failed = await _second_call_failing(
        port, lambda client: client.request("PUT", "/containerGroups/vf-1", json={"location": "westeurope"}))
    assert received[1].startswith(b"PUT /containerGroups/vf-1 "), received  # the server has the create
    assert "connection refused" in str(failed)  # the repeat's own failure: what the call ends with
    assert not never_connected(failed)


async def test_a_redirect_followed_to_an_address_that_refuses_is_not_taken_for_unsent() -> None:
    """A 303 after a POST says the server did it: the GET it points to failing to connect changes nothing."""
    elsewhere = f"http://127.0.0.1:{free_port()}/machines/vf-1"
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await _request(reader))
        writer.write(f"HTTP/1.1 303 See Other\r\nLocation: {elsewhere}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    client = HttpClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=5.0, connect_timeout=1.0)
    try:
        with pytest.raises(HttpError) as failed:
            await client.request("POST", "/machines", json={"name": "vf-1"})
    finally:
        await client.aclose()
        server.close()
    assert received and received[0].startswith(b"POST /machines ")
    assert "connection refused" in str(failed.value)
    assert not never_connected(failed.value)


async def test_a_streamed_call_whose_repeat_cannot_connect_is_not_taken_for_unsent(
        one_connection: tuple[int, list[bytes]]) -> None:
    port, received = one_connection

    async def watch(client: HttpClient) -> None:
        async with client.lines("GET", "/pods?watch=1", timeout=5.0):
            pass

    failed = await _second_call_failing(port, watch)
    assert received[1].startswith(b"GET /pods?watch=1 "), received
    assert not never_connected(failed)
