"""Clients that hold a dispatcher's connections without a key, against `python -m dispatcher` as it
runs (dispatcher/serving/server.py): a "slow read" of a large answer, more connections than it may hold,
and a request that finds the process out of descriptors. Bounded: a handful of loopback sockets,
the limits lowered through the settings a deployment sets.
"""

from __future__ import annotations

import os
import resource
import shlex
import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import DispatcherProcess, run_dispatcher

ASSET = "/docs-assets/swagger-ui-bundle.js"  # 1.7 MB, served without a key (it renders /docs)
SMALL_ASSET = "/docs-assets/swagger-ui.css"
PIPELINED = 6  # requests on one connection: ~10 MB of answers
WRITE_TIMEOUT = 1.0
MAX_CONNECTIONS = 8
WATCHED_CAP = 16  # event streams as well as the bot's channel
WAIT = 30.0
BASE_ENV = {"DISPATCHER_API_KEYS": "slow-clients-key-0123456789abcdef", "RESERVE_MAX_IDLE": "0",
            "WRITE_TIMEOUT_SECONDS": str(WRITE_TIMEOUT), "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "HEADER_TIMEOUT_SECONDS": "30",  # idle sockets stay until the cap, not the head deadline, ends them
            "KEEP_ALIVE_SECONDS": "30"}  # and kept-alive ones


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    with run_dispatcher(tmp_path, BASE_ENV) as running:
        yield running


def address(dispatcher: DispatcherProcess) -> tuple[str, int]:
    return "127.0.0.1", int(dispatcher.base_url.rsplit(":", 1)[1])


def asking(dispatcher: DispatcherProcess, path: str, *, times: int = 1, rcvbuf: int | None = None) -> socket.socket:
    """A connection that sends `times` requests for `path` at once (pipelined), the last one closing it."""
    sock = socket.socket()
    if rcvbuf is not None:  # a reader that takes (almost) nothing: its window stays shut
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(address(dispatcher))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    sock.sendall(f"{request}\r\n".encode() * (times - 1) + f"{request}Connection: close\r\n\r\n".encode())
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the dispatcher closes (or resets) the connection."""
    got = bytearray()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_a_client_that_stops_reading_a_large_answer_is_cut_off(dispatcher: DispatcherProcess) -> None:
    whole = httpx.get(dispatcher.base_url + ASSET, timeout=WAIT)  # control: a reader gets all of it
    assert whole.status_code == 200 and len(whole.content) > 1_000_000
    # Pipelined: more than the kernel's send buffer takes (tcp_wmem's 4 MB at most), so the answer
    # waits in the dispatcher as it does when many connections share the kernel's memory.
    stalled = [asking(dispatcher, ASSET, times=PIPELINED, rcvbuf=4096) for _ in range(3)]
    try:
        time.sleep(WRITE_TIMEOUT + 3)  # nothing read: past the write deadline (and its scheduling)
        for sock in stalled:
            got = read_to_end(sock)  # reading now would let a connection still held finish its answers
            assert len(got) < PIPELINED * len(whole.content), "a stalled answer was held until its client read it"
    finally:
        for sock in stalled:
            sock.close()
    assert httpx.get(dispatcher.base_url + "/healthz", timeout=WAIT).status_code == 200


# A connection closed for room is seen closed within this (a busy machine's server takes its time);
# one kept is seen silent for 0.5 s, far below the 30 s head deadline, once the closes it follows
# have been seen.
CLOSED_WITHIN = 10.0


def silent(sock: socket.socket, within: float = 0.5) -> bool:
    """Nothing came on `sock` (no answer, no close) within `within` seconds."""
    sock.settimeout(within)
    try:
        sock.recv(4096)
    except TimeoutError:
        return True
    except OSError:
        return False
    return False


# A head, its body owed. `Expect: 100-continue` has the server say when the app awaits the body.
OWED = b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"


def connect(dispatcher: DispatcherProcess, head: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address(dispatcher), timeout=WAIT)
    if head:
        sock.sendall(head)
    time.sleep(0.05)  # in order: what it sent is read before the next connection arrives
    return sock


def owing_body(dispatcher: DispatcherProcess) -> socket.socket:
    """A connection whose request head was read and whose body the app awaits (the server says so:
    `100 Continue`), before the next connection arrives."""
    sock = socket.create_connection(address(dispatcher), timeout=WAIT)
    sock.sendall(OWED)
    assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue"), "the head was not read"
    return sock


def kept_alive(dispatcher: DispatcherProcess) -> HTTPConnection:
    """A client that made one request and keeps its connection for the next."""
    client = HTTPConnection(*address(dispatcher), timeout=WAIT)
    assert asks(client) == 200
    time.sleep(0.05)
    return client


def asks(client: HTTPConnection) -> int | str:
    """The status of `/healthz` asked again on the client's own connection (an error if it was closed)."""
    try:
        client.request("GET", "/healthz")
        answer = client.getresponse()
        answer.read()
        return answer.status
    except (OSError, HTTPException) as exc:  # reset, or closed (RemoteDisconnected)
        return repr(exc)
    finally:
        client.auto_open = 0  # never a new connection in its place


def answered(sock: socket.socket, rest: bytes) -> bytes:
    """What the dispatcher says once `rest` (the body it is owed) comes."""
    try:
        sock.sendall(rest)
        return sock.recv(4096)
    except OSError as exc:
        return repr(exc).encode()


def test_requests_owed_their_bodies_never_keep_a_request_out(dispatcher: DispatcherProcess) -> None:
    """The app works on at most MAX_CONNECTIONS less an eighth of requests (at 8, 7). A `POST` head
    whose body never comes is one of them, but only waited on: the next request takes the place of
    the oldest such, which is closed, rather than being answered 503 (so a reconnect every
    HEADER_TIMEOUT_SECONDS no longer holds the whole API at 503 with no body byte sent)."""
    held = [owing_body(dispatcher) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        assert all(silent(sock) for sock in held)  # control: all waited on
        asked = httpx.get(dispatcher.base_url + SMALL_ASSET, timeout=WAIT)
        assert asked.status_code == 200, asked.text[:300]
        assert not silent(held[0], CLOSED_WITHIN), "the oldest was not closed"
        assert all(silent(sock) for sock in held[1:])
        assert answered(held[1], b"{}" * 5).startswith(b"HTTP/1.1 "), "a body that came was not answered"
    finally:
        for sock in held:
            sock.close()


def streaming(sock: socket.socket) -> bool:
    """Open: quiet, or sending its events (a keep-alive comment)."""
    sock.settimeout(0.2)
    try:
        return sock.recv(65536) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


@pytest.fixture
def watched_dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    """One with a live session (a stand-in bot on its channel) whose events can be watched."""
    env = {**BASE_ENV, **STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
           "MAX_CONNECTIONS": str(WATCHED_CAP)}
    with run_dispatcher(tmp_path, env) as running:
        yield running


def test_requests_past_the_cap_are_answered_503_as_they_come(watched_dispatcher: DispatcherProcess) -> None:
    """Requests the app is working on (here event streams, their requests whole) fill its share of
    the cap, MAX_CONNECTIONS less an eighth (at 16, 14): the next is answered 503 as it comes, and
    `/healthz` regardless (tests/security/test_kept_alive_connection_flood.py: and bots' channel
    dials). None of them is closed to make room."""
    dispatcher = watched_dispatcher
    auth = {"Authorization": f"Bearer {BASE_ENV['DISPATCHER_API_KEYS']}"}
    started = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=auth, timeout=WAIT)
    assert started.status_code == 201, started.text
    watch = (f"GET /sessions/{started.json()['session_id']}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             f"Authorization: {auth['Authorization']}\r\n\r\n").encode()
    streams = [connect(dispatcher, watch) for _ in range(WATCHED_CAP - WATCHED_CAP // 8)]
    try:
        assert all(sock.recv(4096).startswith(b"HTTP/1.1 200") for sock in streams)  # each open
        one_more = asking(dispatcher, SMALL_ASSET)
        refused = read_to_end(one_more)
        one_more.close()
        assert refused.startswith(b"HTTP/1.1 503") and b'"overloaded"' in refused, refused[:300]
        assert httpx.get(dispatcher.base_url + "/healthz", timeout=WAIT).status_code == 200
        assert all(streaming(sock) for sock in streams)  # none closed to make room
    finally:
        for sock in streams:
            sock.close()
    assert httpx.get(dispatcher.base_url + SMALL_ASSET, timeout=WAIT).status_code == 200  # the cap frees


def test_room_is_made_from_silent_connections_then_idle_ones_and_uploads_last(dispatcher: DispatcherProcess) -> None:
    """One past the cap closes, oldest first, a connection that has not sent a whole request head;
    only when there is none, one idle between requests; an upload under way (its body owed) only
    when there is neither. So a flood of connects that send nothing closes its own sockets, never a
    kept-alive client's connection or an upload that came before it."""
    upload = owing_body(dispatcher)  # the oldest of all
    clients = [kept_alive(dispatcher) for _ in range(2)]
    flood = [connect(dispatcher) for _ in range(MAX_CONNECTIONS - 3)]  # the cap full: 8
    try:
        flood += [connect(dispatcher) for _ in range(3 * MAX_CONNECTIONS)]  # each one past the cap
        assert [asks(client) for client in clients] == [200, 200] and silent(upload)
        closed, kept = flood[:3 * MAX_CONNECTIONS], flood[3 * MAX_CONNECTIONS:]
        assert [silent(sock, CLOSED_WITHIN) for sock in closed] == [False] * len(closed)
        assert [silent(sock) for sock in kept] == [True] * len(kept)
        for sock in flood:
            sock.close()
        clients += [kept_alive(dispatcher) for _ in range(MAX_CONNECTIONS - 3)]  # the cap full again
        newcomer = connect(dispatcher)  # closes the oldest idle one, not the older upload
        last = connect(dispatcher)  # closes the newcomer: it had sent nothing
        assert [silent(newcomer, CLOSED_WITHIN), silent(last)] == [False, True]
        assert [asks(client) for client in clients[1:]] == [200] * (MAX_CONNECTIONS - 2)
        assert asks(clients[0]) != 200  # closed to make room
        assert answered(upload, b"{}" * 5).startswith(b"HTTP/1.1 "), "the upload was closed to make room"
        last.close()
        newcomer.close()
    finally:
        upload.close()
        for client in clients:
            client.close()


def leave_one_free(pid: int) -> None:
    """Lowers the process's descriptor limit to leave exactly one free, once its descriptors settle
    (the start's readiness probe closes its connection on its own time)."""
    listed: set[int] = set()
    for _ in range(50):
        open_fds = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
        if open_fds == listed:
            return
        listed = open_fds
        limit = next(n for n in range(1, 65536) if n - len([fd for fd in open_fds if fd < n]) == 1)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]))
        time.sleep(0.3)
    pytest.fail("the dispatcher's descriptors never settled")


def test_a_request_that_finds_no_descriptor_left_is_answered_503_without_a_traceback(
    dispatcher: DispatcherProcess,
) -> None:
    pid = dispatcher.process.pid
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    leave_one_free(pid)  # the accepted connection's
    try:
        sock = asking(dispatcher, SMALL_ASSET)  # the asset's file cannot be opened: no descriptor left
        answer = read_to_end(sock)
        sock.close()
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b'"overloaded"' in answer
    assert "Traceback" not in dispatcher.log()
    assert "out of file descriptors on GET " + SMALL_ASSET in dispatcher.log()
    assert httpx.get(dispatcher.base_url + SMALL_ASSET, timeout=WAIT).status_code == 200  # control, once freed
