"""An INVITE whose audio profile PJSIP 2.15.1 cannot make media for (UDP/TLS/RTP/SAVP, with or without
SDES keys) killed the edge (SIGSEGV) once a `pj.Call` existed for it, on an edge with any SRTP trunk. The
edge now makes no call for it (PJSUA answers 480): each case here is a fresh, real edge process that must
live and take a plain call after."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import pytest

from tests.sip.certificates import TestCa
from tests.sip.conftest import NUMBER, run_edge
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


def invite(port: int, source: str, number: str, sdp: str) -> list[str]:
    """One INVITE over UDP from `source`; the first lines of what came back within 3 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        host, local_port = sock.getsockname()
        body = SDP_HEAD + sdp
        sock.sendto((f"INVITE sip:{number}@127.0.0.1:{port} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                     f"Max-Forwards: 70\r\nFrom: <sip:+14155550100@{source}>;tag=a1\r\n"
                     f"To: <sip:{number}@127.0.0.1>\r\nCall-ID: unplayable-{secrets.token_hex(6)}\r\n"
                     f"CSeq: 1 INVITE\r\nContact: <sip:caller@{host}:{local_port}>\r\n"
                     f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode(),
                    ("127.0.0.1", port))
        got = []
        try:
            while True:
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


@pytest.mark.parametrize("case", CASES)
def test_an_unplayable_offer_leaves_the_edge_up(tmp_path: Path, case: str) -> None:
    mandatory = "mandatory" in case
    trunks = OPTIONAL if "srtp_edge" in case or "optional" in case else ""
    settings = tls_settings(tmp_path) if trunks or mandatory else ""
    with run_edge("http://127.0.0.1:9", tmp_path, trunks="" if mandatory else trunks, settings=settings,
                  trunk_settings='srtp = "mandatory"' if mandatory else "") as edge:
        source = "127.0.0.2" if case.startswith("stranger") else ("127.0.0.9" if "optional" in case else "127.0.0.1")
        number = OPTIONAL_NUMBER if "optional" in case else ("+19999999999" if mandatory else NUMBER)
        answers = invite(edge.sip_port, source, number, UDPTLS_NOKEY if "nokey" in case else UDPTLS)
        time.sleep(1)
        assert edge.process.poll() is None, f"{case}: the edge died ({edge.process.returncode}): {answers}"
        assert answers and answers[-1].split()[1] in ("480", "488"), answers
        # Still serving: a plain call from the trunk is admitted (rings), or judged (488 on a mandatory trunk).
        after = invite(edge.sip_port, "127.0.0.1", NUMBER, PLAIN)
        expected = "SIP/2.0 488 Not Acceptable Here" if mandatory else "SIP/2.0 180 Ringing"
        assert expected in after, f"{case}: {after}\n{edge.log()[-2000:]}"
        assert edge.process.poll() is None, f"{case}: the edge died ({edge.process.returncode})"
