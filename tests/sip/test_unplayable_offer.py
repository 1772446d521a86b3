"""An INVITE whose audio profile PJSIP 2.15.1 cannot make media for (UDP/TLS/RTP/SAVP, with or without
SDES keys) killed the edge (SIGSEGV) once a `pj.Call` existed for it, on an edge with any SRTP trunk. The
edge now makes no call for it (PJSUA answers 480): after each such offer the real edge process must live
and take a plain call.

The cases need three edges: plain, with an SRTP-optional trunk, with one SRTP-mandatory trunk. Each is
started once for the module and shared by its cases (each its own Call-ID): an offer that killed an edge
fails its own case, and every later case on that edge, by name."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.sip.certificates import TestCa
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.secure_caller import KEY, SDP_HEAD
from tests.support.ports import free_port

UDPTLS = f"m=audio 30000 UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}\r\n"
UDPTLS_NOKEY = "m=audio 30000 udp/tls/rtp/savp 0\r\na=rtpmap:0 PCMU/8000\r\n"
PLAIN = "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
OPTIONAL_NUMBER = "+14155550197"
OPTIONAL = (f'[[trunk]]\nname = "optional"\nsources = ["127.0.0.9/32"]\nsrtp = "optional"\n'
            f'numbers = {{ "{OPTIONAL_NUMBER}" = "" }}\n')
CASES = ["stranger_plain_edge", "stranger_srtp_edge", "trunk_plain_edge", "trunk_srtp_edge_off_trunk",
         "trunk_optional_trunk", "stranger_nokey_srtp_edge", "stranger_nokey_mandatory_only_edge"]
QUIET_SECONDS = 3.0  # no answer for this long: the edge has said all it will


def invite(port: int, source: str, number: str, sdp: str) -> list[str]:
    """One INVITE over UDP from `source`; the first lines of what came back, up to its first final
    answer (a retransmission of it adds nothing), or until nothing came for QUIET_SECONDS."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(QUIET_SECONDS)
        host, local_port = sock.getsockname()
        body = SDP_HEAD + sdp
        sock.sendto((f"INVITE sip:{number}@127.0.0.1:{port} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                     f"Max-Forwards: 70\r\nFrom: <sip:+14155550100@{source}>;tag=a1\r\n"
                     f"To: <sip:{number}@127.0.0.1>\r\nCall-ID: unplayable-{secrets.token_hex(6)}\r\n"
                     f"CSeq: 1 INVITE\r\nContact: <sip:caller@{host}:{local_port}>\r\n"
                     f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode(),
                    ("127.0.0.1", port))
        got: list[str] = []
        try:
            while not got or int(got[-1].split()[1]) < 200:
                got.append(sock.recv(65535).decode(errors="replace").split("\r\n", 1)[0])
        except OSError:
            pass
        return got


def tls_settings(workdir: Path) -> str:
    (workdir / "ca").mkdir()
    ca = TestCa(workdir / "ca")
    server = ca.issue("edge")
    return (f'tls_port = {free_port()}\ntls_certificate_file = "{server.certificate}"\n'
            f'tls_private_key_file = "{server.private_key}"\ntls_ca_file = "{ca.certificate}"\n'
            "tls_verify_client = true\ntls_port_firewalled = true")


def edge_kind(case: str) -> str:
    """Which edge a case calls: "mandatory" (its one trunk SRTP-mandatory), "srtp" (an SRTP-optional
    trunk beside the plain one) or "plain"."""
    if "mandatory" in case:
        return "mandatory"
    return "srtp" if "srtp_edge" in case or "optional" in case else "plain"


@pytest.fixture(scope="module")
def edge_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], EdgeProcess]]:
    """The module's edge of a kind (`edge_kind`), started when a case first needs it; all stopped at
    the module's end."""
    started: dict[str, EdgeProcess] = {}
    with ExitStack() as stack:
        def edge(kind: str) -> EdgeProcess:
            if kind not in started:
                workdir = tmp_path_factory.mktemp(f"unplayable-{kind}")
                settings = tls_settings(workdir) if kind != "plain" else ""
                started[kind] = stack.enter_context(run_edge(
                    "http://127.0.0.1:9", workdir, trunks=OPTIONAL if kind == "srtp" else "", settings=settings,
                    trunk_settings='srtp = "mandatory"' if kind == "mandatory" else ""))
            return started[kind]
        yield edge


@pytest.mark.parametrize("case", CASES)
def test_an_unplayable_offer_leaves_the_edge_up(edge_for: Callable[[str], EdgeProcess], case: str) -> None:
    mandatory = "mandatory" in case
    edge = edge_for(edge_kind(case))
    assert edge.process.poll() is None, f"{case}: an earlier case killed the edge ({edge.process.returncode})"
    source = "127.0.0.2" if case.startswith("stranger") else ("127.0.0.9" if "optional" in case else "127.0.0.1")
    number = OPTIONAL_NUMBER if "optional" in case else ("+19999999999" if mandatory else NUMBER)
    answers = invite(edge.sip_port, source, number, UDPTLS_NOKEY if "nokey" in case else UDPTLS)
    time.sleep(1)  # a crash the offer caused after its answer: the edge is gone by now
    assert edge.process.poll() is None, f"{case}: the edge died ({edge.process.returncode}): {answers}"
    assert answers and answers[-1].split()[1] in ("480", "488"), answers
    # Still serving: a plain call from the trunk is admitted (rings), or judged (488 on a mandatory trunk).
    after = invite(edge.sip_port, "127.0.0.1", NUMBER, PLAIN)
    expected = "SIP/2.0 488 Not Acceptable Here" if mandatory else "SIP/2.0 180 Ringing"
    assert expected in after, f"{case}: {after}\n{edge.log()[-2000:]}"
    assert edge.process.poll() is None, f"{case}: the edge died ({edge.process.returncode})"
