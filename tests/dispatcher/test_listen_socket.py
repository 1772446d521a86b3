"""The dispatcher's listening socket: what every accepted connection inherits from it."""

from __future__ import annotations

import asyncio
import socket

from dispatcher.__main__ import bind_socket


async def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """TCP_NODELAY on every connection: a response written in two pieces (head, body) is not held
    back for the client's delayed ACK, ~40 ms per request on a keep-alive connection."""
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=bind_socket("127.0.0.1", 0))
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        assert await asyncio.wait_for(nodelay, timeout=10) != 0
        writer.close()


def test_the_listening_socket_is_not_handed_to_processes_the_dispatcher_starts() -> None:
    """A local bot is a child process: an inherited listener would let it accept the dispatcher's
    clients (their API keys, other sessions' bodies) whenever a spawn does not close descriptors."""
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert not sock.get_inheritable()
    finally:
        sock.close()
