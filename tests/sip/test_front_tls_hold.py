"""The front's TLS connections against one source that opens bare connects and sends nothing (no TLS
byte, no certificate): Kamailio closes each after QUIET_SECONDS, so the trunk gets in again while the
stranger still holds them, and the connection a trunk's call came by stays up past that, for the
worker's BYE. The cap is scaled down to a few connections; Kamailio counts them as it does 2048. The
quiet time is scaled down too (its `tcp_connection_lifetime`, which Kamailio keeps as it keeps 30 s)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge import front_tls
from tests.sip.certificates import Issued, TestCa
from tests.sip.kamailio_front import NUMBER, STRANGER, TRUNK, running_front
from tests.sip.test_tls_workers import need_tls_module
from tests.support.ports import free_port

pytestmark = pytest.mark.slow  # waits out the front's QUIET_SECONDS

CAP = 6
QUIET_SECONDS = 10  # the front's 30, scaled down: what is waited out
CONNECT_SECONDS = 5.0
TICK_SECONDS = 5  # Kamailio's connection timer closes connections a few seconds past their time
CLOSED_BY = QUIET_SECONDS + 3 * TICK_SECONDS
ANSWER_SECONDS = 20.0  # the front tries each stand-in worker for tm's fr_timer (3 s), then answers 408


def _context(ca: TestCa, trunk: Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca.certificate)
    context.load_cert_chain(trunk.certificate, trunk.private_key)
    return context


def _request(tls: ssl.SSLSocket, method: str, port: int, call_id: str) -> None:
    host, local = tls.getsockname()[:2]
    tls.sendall((f"{method} sip:{NUMBER}@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                 f"Via: SIP/2.0/TLS {host}:{local};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\n"
                 f"From: <sip:+14155550100@{host}>;tag=t\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                 f"CSeq: 1 {method}\r\nContact: <sip:t@{host}:{local};transport=tls>\r\n"
                 "Content-Length: 0\r\n\r\n").encode())


def _trunk_options(port: int, context: ssl.SSLContext) -> str:
    """A new TLS connection from the trunk and an OPTIONS on it: the front's answer, or why it failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS, source_address=(TRUNK, 0)) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            _request(tls, "OPTIONS", port, f"options-{time.monotonic_ns()}")
            return tls.recv(4096).decode(errors="replace").split("\r\n", 1)[0] or "closed"
    except (OSError, ssl.SSLError) as exc:
        return f"refused: {exc!r}"


def _open(sock: socket.socket) -> bool:
    """Whether the front has not closed a bare connect."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _bare_connects(port: int, count: int) -> Iterator[list[socket.socket]]:
    held = [socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS, source_address=(STRANGER, 0))
            for _ in range(count)]
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def test_bare_connects_holding_every_slot_are_closed_and_the_trunks_call_connection_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    need_tls_module()
    monkeypatch.setattr(front_tls, "MAX_CONNECTIONS", CAP)
    monkeypatch.setattr(front_tls, "QUIET_SECONDS", QUIET_SECONDS)
    ca = TestCa(tmp_path)
    edge, trunk = ca.issue("edge"), ca.issue("trunk", TRUNK)
    port = free_port()
    settings = (f'tls_port = {port}\ntls_certificate_file = "{edge.certificate}"\n'
                f'tls_private_key_file = "{edge.private_key}"\ntls_ca_file = "{ca.certificate}"\n'
                "tls_verify_client = true\ntls_port_firewalled = true\n")
    context = _context(ca, trunk)
    with running_front(tmp_path, settings) as front, \
            socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS, source_address=(TRUNK, 0)) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as call:
        _request(call, "INVITE", port, "held-call")  # the front passes it to a worker (which never answers)
        answers = _final_answer(call)
        assert "SIP/2.0 100" in answers and "SIP/2.0 408" in answers, front.log_path.read_text()
        # Quiet from now on, since before the bare connects: it would be closed before them, were it not kept.
        with _bare_connects(port, CAP - 1) as held:
            during = _trunk_options(port, context)
            assert during.startswith("refused"), f"{during}: the cap was not reached"
            deadline = time.monotonic() + CLOSED_BY
            while any(map(_open, held)) and time.monotonic() < deadline:
                time.sleep(1)
            assert not any(map(_open, held)), f"bare connects still open after {CLOSED_BY} s"
            after = _trunk_options(port, context)
            assert after == "SIP/2.0 200 OK", f"{after}\n{front.log_path.read_text()[-3000:]}"
            time.sleep(TICK_SECONDS)
            assert _tls_open(call), "the call's own connection was closed with the bare ones"


def _final_answer(tls: ssl.SSLSocket) -> str:
    """What the front answers an INVITE up to its final answer: 408 once no stand-in worker answers."""
    tls.settimeout(ANSWER_SECONDS)
    received = ""
    while "SIP/2.0 408" not in received:
        chunk = tls.recv(4096).decode(errors="replace")
        if not chunk:
            break
        received += chunk
    return received


def _tls_open(tls: ssl.SSLSocket) -> bool:
    """Whether the front has not closed a TLS connection: what it sent since (its answers) is read."""
    tls.settimeout(1.0)
    try:
        while tls.recv(4096):
            pass
    except TimeoutError:
        return True
    except (OSError, ssl.SSLError):
        return False
    return False
