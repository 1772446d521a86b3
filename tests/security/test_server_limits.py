"""Findings 4 and 9, against `python -m dispatcher` as it runs: the server's own limits.

4: the channel reads no frame over the contract's limit (it used to read 16 MiB frames whole
   before checking), and a credential read from a bot's environment opens no channel at all.
9: connections that send nothing are closed, so idle sockets cannot take the API down.
"""

from __future__ import annotations

import asyncio
import resource
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botchannel.contract import CHANNEL_PATH, MAX_FRAME_BYTES, Hello, encode
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.security.conftest import WAIT, stolen_credential
from tests.support.processes import DispatcherProcess, children_of, run_dispatcher


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
           "STANDIN_MODE": "serve", "RESERVE_MAX_IDLE": "0",
           "HEADER_TIMEOUT_SECONDS": "1"}
    with run_dispatcher(tmp_path, env) as running:
        yield running


def a_bots_credential(dispatcher: DispatcherProcess) -> tuple[str, str]:
    """Starts a session; its id and the credential its (compromised) bot holds."""
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, timeout=WAIT)
    assert answer.status_code == 201, answer.text
    [bot] = children_of(dispatcher.process.pid)
    return answer.json()["session_id"], stolen_credential(bot)


async def open_channel(dispatcher: DispatcherProcess, credential: str) -> ClientConnection:
    url = dispatcher.base_url.replace("http://", "ws://") + CHANNEL_PATH
    return await connect(url, additional_headers={"Authorization": f"Bearer {credential}"}, proxy=None,
                         max_size=None, open_timeout=WAIT)


async def close_code(ws: ClientConnection) -> int | None:
    """How the dispatcher closed `ws`, which must say nothing first (a welcome fails here)."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), WAIT)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def test_a_frame_over_the_limit_closes_the_channel_without_being_read_whole(dispatcher) -> None:
    _, credential = a_bots_credential(dispatcher)
    within = await open_channel(dispatcher, credential)
    await within.send("x" * (MAX_FRAME_BYTES - 1024))  # control: read (and refused as no hello)
    assert await close_code(within) != 1009

    oversized = await open_channel(dispatcher, credential)
    await oversized.send("x" * (MAX_FRAME_BYTES * 4))
    assert await close_code(oversized) == 1009  # message too big


async def test_a_stolen_credential_opens_no_channel_and_the_bots_own_stays(dispatcher) -> None:
    """A bot's credential, read from its environment, opens nothing: each hello from elsewhere
    lacks the launch proof (dispatcher/machines/local/launch_proof.py), so twenty of them neither
    hold channels open nor replace the bot's own."""
    session_id, credential = a_bots_credential(dispatcher)
    machine_id = f"local-{session_id}"
    for _ in range(20):
        ws = await open_channel(dispatcher, credential)
        await ws.send(encode(Hello(machine_id=machine_id, session_id=session_id)))
        await close_code(ws)  # closed, never welcomed
    offer = {"sdp": "v=0-limits", "type": "offer"}  # control: the bot still answers over its own channel
    answer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", json=offer, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sdp"] == "answer-to:v=0-limits"


def test_idle_connections_are_closed_and_healthz_stays_up_at_a_low_descriptor_limit(dispatcher) -> None:
    resource.prlimit(dispatcher.process.pid, resource.RLIMIT_NOFILE, (256, 256))
    assert httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT).status_code == 200  # control
    port = int(dispatcher.base_url.rsplit(":", 1)[1])
    idle = []
    for n in range(400):  # more than the dispatcher may hold open
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        if n % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head never finished
        idle.append(sock)
    try:
        deadline = time.monotonic() + WAIT
        for sock in idle:  # each is closed by the dispatcher (EOF), none answered
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                assert sock.recv(1) == b"", "an idle connection got an answer"
            except TimeoutError:
                pytest.fail("an idle connection was never closed")
            except ConnectionResetError:
                pass
        assert httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT).status_code == 200
    finally:
        for sock in idle:
            sock.close()
