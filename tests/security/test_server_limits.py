"""Findings 4 and 9, against `python -m dispatcher` as it runs: the server's own limits.

4: the channel reads no frame over the contract's limit (it used to read 16 MiB frames whole
   before checking), and one credential keeps at most one channel open.
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
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from botchannel.contract import CHANNEL_PATH, MAX_FRAME_BYTES, Hello, Welcome, encode, parse_frame
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


async def open_channel(dispatcher: DispatcherProcess, credential: str, session_id: str, machine_id: str):  # noqa: ANN201
    url = dispatcher.base_url.replace("http://", "ws://") + CHANNEL_PATH
    ws = await connect(url, additional_headers={"Authorization": f"Bearer {credential}"}, proxy=None,
                       max_size=None, open_timeout=WAIT)
    await ws.send(encode(Hello(machine_id=machine_id, session_id=session_id)))
    assert isinstance(parse_frame(await asyncio.wait_for(ws.recv(), WAIT)), Welcome)
    return ws


async def test_a_frame_over_the_limit_closes_the_channel_without_being_read_whole(dispatcher) -> None:
    session_id, credential = a_bots_credential(dispatcher)
    machine_id = f"local-{session_id}"
    within = await open_channel(dispatcher, credential, session_id, machine_id)
    await within.send("x" * (MAX_FRAME_BYTES - 1024))  # control: malformed but small: ignored
    await within.ping()
    await within.close()

    oversized = await open_channel(dispatcher, credential, session_id, machine_id)
    await oversized.send("x" * (MAX_FRAME_BYTES * 4))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(oversized.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big


async def test_one_credential_keeps_at_most_one_channel_open(dispatcher) -> None:
    session_id, credential = a_bots_credential(dispatcher)
    machine_id = f"local-{session_id}"
    opened = [await open_channel(dispatcher, credential, session_id, machine_id) for _ in range(20)]

    async def closed_by_the_dispatcher(ws) -> bool:  # noqa: ANN001
        try:
            await asyncio.wait_for(ws.recv(), WAIT)
        except ConnectionClosed:
            return True
        return False

    assert await asyncio.gather(*(closed_by_the_dispatcher(ws) for ws in opened[:-1])) == [True] * 19
    await opened[-1].ping()  # control: the newest (a reconnect) is the live one
    await opened[-1].close()


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
