"""Requests against `python -m dispatcher` as it runs (dispatcher/serving/server.py): the server
refuses a head over `SERVER_MAX_HEAD_BYTES` before the app sees it, whether it arrives whole or
never ends; a head under it reaches the app (whose own JSON 431 starts at 8 KB); requests pipelined
behind a body are each answered, but a connection that pipelines without end, or sends a chunked
body's trailers without end, makes the dispatcher hold no more memory for it (llhttp bounds
neither: the server does)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.serving.server import SERVER_MAX_HEAD_BYTES
from tests.security.test_slow_clients import read_to_end
from tests.support.processes import DispatcherProcess, run_dispatcher

KEY = "request-heads-key-0123456789abcdef"
WAIT = 20.0


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    # The head deadline far away: a refusal seen here is the size bound's, not the clock's.
    with run_dispatcher(tmp_path, {"DISPATCHER_API_KEYS": KEY, "RESERVE_MAX_IDLE": "0",
                                   "HEADER_TIMEOUT_SECONDS": "60"}) as running:
        yield running


def connected(dispatcher: DispatcherProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(dispatcher.base_url.rsplit(":", 1)[1])), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def test_a_whole_head_over_the_bound_is_refused_by_the_server(dispatcher: DispatcherProcess) -> None:
    with connected(dispatcher) as sock:
        padding = "p" * (SERVER_MAX_HEAD_BYTES + 100)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {padding}\r\n\r\n".encode())
        got = read_to_end(sock)
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert b"request head over 16384 bytes" in got  # the server's answer, not the app's JSON


def test_a_head_that_never_ends_is_cut_at_the_bound(dispatcher: DispatcherProcess) -> None:
    with connected(dispatcher) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent, started = 0, time.monotonic()
        try:
            while sent < 40 * SERVER_MAX_HEAD_BYTES:  # header lines, and never the blank line
                sock.sendall(b"X-More: " + b"m" * 1000 + b"\r\n")
                sent += 1010
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = read_to_end(sock)
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert time.monotonic() - started < WAIT / 2  # the bound, not the 60 s head deadline


def test_a_head_under_the_bound_reaches_the_app(dispatcher: DispatcherProcess) -> None:
    with connected(dispatcher) as sock:
        padding = "p" * 12_000  # over the app's 8 KB, under the server's 16 KB
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {padding}\r\n"
                     "Connection: close\r\n\r\n".encode())
        got = read_to_end(sock)
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert b'"headers_too_large"' in got  # the app's JSON error: the server let it through


def test_requests_pipelined_behind_a_body_are_each_answered(dispatcher: DispatcherProcess) -> None:
    body = b'{"body": {}}'
    start = (b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode()
             + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with connected(dispatcher) as sock:
        sock.sendall(start + health)  # one write: the second head begins inside the first's read
        got = read_to_end(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", got)
    assert statuses == [b"201", b"200"], got[:600]


GROWTH_MB = 100  # what one connection may not make the dispatcher hold


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))


def test_a_connection_that_pipelines_without_end_is_dropped_not_queued(dispatcher: DispatcherProcess) -> None:
    pid = dispatcher.process.pid
    baseline = rss_mb(pid)
    blob = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" * 8000  # ~300 KB of requests a write
    with connected(dispatcher) as sock:
        done = threading.Event()

        def drain() -> None:  # it reads its answers: no write stall cuts it
            while not done.is_set():
                try:
                    if not sock.recv(1 << 20):
                        return
                except OSError:
                    return

        threading.Thread(target=drain, daemon=True).start()
        started, dropped = time.monotonic(), False
        try:
            while time.monotonic() - started < 5 and rss_mb(pid) - baseline < 3 * GROWTH_MB:
                sock.sendall(blob)
        except OSError:
            dropped = True
        done.set()
        grown = rss_mb(pid) - baseline
    assert dropped, "the connection was still taking requests after 5 s"
    assert grown < GROWTH_MB, f"one pipelining connection grew the dispatcher by {grown} MB"


def test_a_chunked_bodys_trailers_are_refused(dispatcher: DispatcherProcess) -> None:
    pid = dispatcher.process.pid
    baseline = rss_mb(pid)
    trailers = b"".join(b"X%d: %s\r\n" % (i, b"v" * 200) for i in range(1000))
    with connected(dispatcher) as sock:
        sock.sendall(b"POST /start HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n")
        started = time.monotonic()
        try:
            while time.monotonic() - started < 5 and rss_mb(pid) - baseline < 3 * GROWTH_MB:
                sock.sendall(trailers)
        except OSError:
            pass
        got = read_to_end(sock)
        grown = rss_mb(pid) - baseline
    assert grown < GROWTH_MB, f"trailers grew the dispatcher by {grown} MB"
    assert got.startswith(b"HTTP/1.1 400 ") and b"trailers are not accepted" in got, got[:300]


def test_a_chunked_body_without_trailers_is_taken(dispatcher: DispatcherProcess) -> None:
    with connected(dispatcher) as sock:
        sock.sendall(b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     + b"c\r\n{\"body\": {}}\r\n0\r\n\r\n")
        got = read_to_end(sock)
    assert got.startswith(b"HTTP/1.1 201 "), got[:300]


def test_a_malformed_request_in_a_large_read_is_answered_once(dispatcher: DispatcherProcess) -> None:
    with connected(dispatcher) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nBad Header\r\n" + b"x" * 3 * SERVER_MAX_HEAD_BYTES)
        got = read_to_end(sock)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", got) == [b"400"], got[:300]
