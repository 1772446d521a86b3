"""Finding: connections that never send a byte, opened at about MAX_CONNECTIONS/10 a second (each
replaced as the head deadline closes it), kept `/healthz` and new bots' channel dials at 503: the
cap counted them like any connection and refused the newcomer. A failing `/healthz` makes the load
balancer drop the replica, and bots that cannot dial fail their sessions.

Against `python -m dispatcher` with MAX_CONNECTIONS lowered the way a deployment sets it, the cap
held full of idle sockets the whole time (bounded: a few dozen loopback sockets for a few seconds):
`/healthz` answers 200 and a bot channel dial reaches the channel (403: the credential is a test's)
while the flood holds the cap, as they do without it (the control)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import DispatcherProcess, run_dispatcher

MAX_CONNECTIONS = 24
FLOOD_SECONDS = 4.0
ENV = {"DISPATCHER_API_KEYS": "idle-flood-key-0123456789abcdef", "RESERVE_MAX_IDLE": "0",
       "BOT_CHANNEL_TOKEN": "idle-flood-deployment-" + "d" * 30, "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
       "HEADER_TIMEOUT_SECONDS": "30"}  # idle sockets stay until the cap, not the head deadline, ends them


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    with run_dispatcher(tmp_path, ENV) as running:
        yield running


def channel_dial(port: int) -> str:
    """The status line a bot channel upgrade gets (a credential the channel does not know)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /bots/channel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer not-a-bot-credential\r\n\r\n")
        return sock.recv(200).split(b"\r\n")[0].decode()


def answers(dispatcher: DispatcherProcess, port: int) -> tuple[int, str]:
    return httpx.get(dispatcher.base_url + "/healthz", timeout=10).status_code, channel_dial(port)


def test_idle_connections_at_the_cap_keep_neither_healthz_nor_bot_channels_out(
    dispatcher: DispatcherProcess,
) -> None:
    port = int(dispatcher.base_url.rsplit(":", 1)[1])
    assert answers(dispatcher, port) == (200, "HTTP/1.1 403 Forbidden")  # control: no flood
    idle: list[socket.socket] = []
    seen: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            while len(idle) < MAX_CONNECTIONS + 4:  # the cap full, and more arriving: none sends a byte
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            seen.append(answers(dispatcher, port))
            idle.extend(socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4))
            for sock in idle[:8]:  # the attacker replaces what it lost, keeping the count bounded
                sock.close()
            del idle[:8]
    finally:
        for sock in idle:
            sock.close()
    assert seen and all(seen_one == (200, "HTTP/1.1 403 Forbidden") for seen_one in seen), seen
    assert answers(dispatcher, port) == (200, "HTTP/1.1 403 Forbidden")
