"""Hostile review of trunks of credentials alone (docs/sip.md#inbound-digest), on the kamailio.cfg the edge writes
(tests/sip/kamailio_front.py: real Kamailio, stand-in workers), as svwar/svcrack would probe an edge open to any
address: what a guesser learns of the trunks' usernames from the front's answers."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import DIGEST_FAILURES, DIGEST_REALM
from sipedge.supervisor import KAMAILIO
from tests.sip.kamailio_front import NUMBER, STRANGER, Front, running_front, wait_for
from tests.sip.raw_sip import GOOD_SDP

pytestmark = pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK),
                                reason="Kamailio is not installed (.ci/run installs it)")

PASSWORD = secrets.token_urlsafe(24)
OTHER_STRANGER = "127.0.0.98"  # in no trunk's sources either
OFFICE = """
[[trunk]]
name = "office"
numbers = { "+14155550177" = "" }
inbound_digest_username = "pbx-a"
inbound_digest_password_env = "PBX_A_PASSWORD"
"""


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    with running_front(tmp_path, trunk_settings=OFFICE, env={"PBX_A_PASSWORD": PASSWORD}) as running:
        yield running


def _invite(host: str, port: int, call_id: str, cseq: int, extra: str = "") -> bytes:
    uri = f"sip:{NUMBER}@127.0.0.1"
    return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{call_id}{cseq}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:guess@{host}>;tag=g{call_id}\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:guess@{host}:{port}>\r\n{extra}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(GOOD_SDP)}\r\n\r\n{GOOD_SDP}").encode()


def _answer(sock: socket.socket) -> str:
    sock.settimeout(3.0)
    return sock.recv(65535).decode(errors="replace")


def _authorization(username: str, password: str, nonce: str) -> str:
    """A caller's answer to the challenge (RFC 2617, qop=auth), as a UA computes it."""
    uri = f"sip:{NUMBER}@127.0.0.1"
    ha1 = hashlib.md5(f"{username}:{DIGEST_REALM}:{password}".encode()).hexdigest()  # noqa: S324 - digest's own
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()  # noqa: S324
    response = hashlib.md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()  # noqa: S324
    return (f'Proxy-Authorization: Digest username="{username}", realm="{DIGEST_REALM}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5\r\n')


def _answered(sock: socket.socket, front: Front, call_id: str, username: str, password: str) -> str:
    """The caller's INVITE, its challenge, then its answer with this credential; the status of what came back
    (none awaited for a right credential, which the stand-in worker keeps)."""
    host, port = sock.getsockname()
    sock.sendto(_invite(host, port, call_id, 1), front.address)
    nonce = re.search(r'nonce="([^"]+)"', _answer(sock))
    assert nonce is not None
    sock.sendto(_invite(host, port, call_id, 2, _authorization(username, password, nonce[1])), front.address)
    return "" if password == PASSWORD else _answer(sock).split("\r\n", 1)[0]


def _guess(sock: socket.socket, front: Front, username: str) -> str:
    """One svcrack-style guess: the challenge, then a response for `username` with a wrong password; its status."""
    return _answered(sock, front, secrets.token_hex(6), username, "wrong-guess")


def _after_guesses(front: Front, host: str, username: str) -> str:
    """What a source hears to a plain INVITE after DIGEST_FAILURES wrong guesses for `username`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        for _ in range(DIGEST_FAILURES):
            assert _guess(sock, front, username) == "SIP/2.0 403 Forbidden"
        sock.sendto(_invite(host, sock.getsockname()[1], secrets.token_hex(6), 1), front.address)
        return _answer(sock).split("\r\n", 1)[0]
    finally:
        sock.close()


def test_ten_guesses_answer_alike_for_a_real_and_an_unknown_username(front: Front) -> None:
    """svwar-style: a guesser sends DIGEST_FAILURES wrong responses for a candidate username, then a plain INVITE;
    the answer must not tell whether the candidate is a trunk's username (docs/sip.md#inbound-digest: "a username
    of no trunk's ... counts towards the source's 10 wrong responses a minute")."""
    real = _after_guesses(front, STRANGER, "pbx-a")
    unknown = _after_guesses(front, OTHER_STRANGER, "not-a-trunk")
    assert real == "SIP/2.0 403 Forbidden"  # the source is cut off, as documented
    assert unknown == real


def _bye(host: str, port: int, call_id: str) -> bytes:
    return (f"BYE sip:{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(4)}"
            f"\r\nMax-Forwards: 70\r\nFrom: <sip:guess@{STRANGER}>;tag=g{call_id}\r\n"
            f"To: <sip:{NUMBER}@127.0.0.1>;tag=worker\r\nCall-ID: {call_id}\r\nCSeq: 3 BYE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_a_strangers_bye_on_a_credential_call_leaves_the_callers_own_bye_its_way(front: Front) -> None:
    """An attacker who knows a call's Call-ID (UDP is cleartext; the bot and the log know it too) sends a BYE from
    an address of its own: the worker refuses it, and the caller's own BYE must still reach the worker."""
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    call_id = secrets.token_hex(6)
    try:
        caller.bind((STRANGER, 0))
        attacker.bind((OTHER_STRANGER, 0))
        _answered(caller, front, call_id, "pbx-a", PASSWORD)
        assert wait_for(lambda: any(t.startswith("INVITE ") and call_id in t for t in front.at_workers()))
        attacker.sendto(_bye(OTHER_STRANGER, attacker.getsockname()[1], call_id), front.address)
        assert wait_for(lambda: any(t.startswith("BYE ") and call_id in t for t in front.at_workers()))
        caller.sendto(_bye(STRANGER, caller.getsockname()[1], call_id), front.address)
        assert wait_for(lambda: any(t.startswith("BYE ") and call_id in t and f"P-Edge-Source: {STRANGER}" in t
                                    for t in front.at_workers())), front.log_path.read_text(errors="replace")[-2000:]
    finally:
        caller.close()
        attacker.close()
