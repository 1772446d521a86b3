"""SIP over TLS with several workers: the edge's Kamailio front takes TLS 1.2 and 1.3 on tls_port and
hands each call to one of three PJSIP workers over loopback, SRTP staying between the caller and the
worker. Debian's baresip is the TLS caller (SIPp here is built without TLS); the edge's certificates
come from a CA made at test time and it requires a client certificate from that CA. The trunks are
test_tls.py's: `loopback` with SRTP mandatory, `plain` without SRTP over UDP."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipedge.front_config import MODULES
from tests.phone.conftest import wait_for_idle_bot
from tests.sip.baresip_agent import run_baresip
from tests.sip.certificates import TestCa
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.raw_sip import status_of
from tests.sip.secure_caller import AVP, SAVP, SDP_HEAD, Leg, SecureCall, keys_in
from tests.sip.test_baresip import CALL_SECONDS, write_caller_wav
from tests.sip.test_tls import (  # noqa: F401  (ca: its fixture, shared)
    PLAIN_NUMBER,
    SRTP,
    ca,
    dial,
    hear_call_back,
    options_over_tls,
    tls_lines,
)
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, three PJSIP workers, baresip, a Pipecat bot

WORKERS = 3
HANDSHAKE_SECONDS = 10
STRANGER = "127.0.0.2"  # loopback too, but no trunk allows it
CHURN = 400  # bare connects opened and closed: a few hundred abort one PJSIP process's TLS listener (docs/sip.md)


def tls_settings(authority: TestCa, tls_port: int) -> str:
    server = authority.issue("edge")
    return (f'tls_port = {tls_port}\ntls_certificate_file = "{server.certificate}"\n'
            f'tls_private_key_file = "{server.private_key}"\ntls_ca_file = "{authority.certificate}"\n'
            "tls_verify_client = true\ntls_port_firewalled = true")  # loopback only


def need_tls_module() -> None:
    if not (MODULES / "tls.so").exists():
        pytest.skip(f"Kamailio's tls module is not installed in {MODULES} (Debian's kamailio-tls-modules: "
                    ".ci/run installs it)")


PLAIN = f'[[trunk]]\nname = "plain"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{PLAIN_NUMBER}" = "" }}\n'


@pytest.fixture(scope="module")
def fronted_tls_edge(parrot_dispatcher: DispatcherProcess, ca: TestCa,  # noqa: F811
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, int]]:
    """Three workers behind Kamailio, TLS on a port of its own; (the edge, its TLS port). No drain
    (sipedge/drain.py): the last test's SIGTERM hangs its call up at once."""
    need_tls_module()
    tls_port = free_port()
    settings = tls_settings(ca, tls_port) + "\ndrain_seconds = 0"
    with run_edge(parrot_dispatcher, tmp_path_factory.mktemp("sip-tls-workers"), workers=WORKERS,
                  settings=settings, trunk_settings='srtp = "mandatory"', trunks=PLAIN) as running:
        yield running, tls_port


async def test_a_call_over_tls_with_srtp_is_answered_and_heard_back_through_the_front(
    parrot_dispatcher: DispatcherProcess, fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
    tmp_path: Path,
) -> None:
    """baresip's BYE (its WAV ended) reaches the worker over the TLS connection and the front's route."""
    edge, tls_port = fronted_tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca), SRTP) as phone:
        await hear_call_back(phone, parrot_dispatcher, edge, tmp_path, NUMBER, tls_port, ";transport=tls")


async def test_plain_udp_still_works_beside_tls_through_the_front(
    parrot_dispatcher: DispatcherProcess, fronted_tls_edge: tuple[EdgeProcess, int], tmp_path: Path,
) -> None:
    edge, _ = fronted_tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav") as phone:
        await hear_call_back(phone, parrot_dispatcher, edge, tmp_path, PLAIN_NUMBER, edge.sip_port, "")


def test_an_rtp_offer_over_udp_to_a_mandatory_srtp_trunk_gets_488_from_the_worker(
    fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path,  # noqa: F811
) -> None:
    """The worker hears every call over loopback UDP: it judges SRTP by the hop the front reports."""
    edge, _ = fronted_tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca), SRTP) as phone:
        closed = dial(phone, NUMBER, edge.sip_port)
    assert closed["type"] == "CALL_CLOSED" and "488" in str(closed.get("param")), f"{closed}\n{edge.log()}"


def test_tls_1_3_is_taken_and_1_2_too(fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa) -> None:  # noqa: F811
    edge, tls_port = fronted_tls_edge
    trunk = ca.issue("trunk")
    newest = options_over_tls(tls_port, ca, trunk, least=ssl.TLSVersion.TLSv1_3)
    assert newest.startswith("TLSv1.3 ") and "SIP/2.0 200" in newest, f"{newest}\n{edge.log()}"
    assert options_over_tls(tls_port, ca, trunk).startswith("TLSv1.3 "), edge.log()  # the newest both speak
    context_12 = options_over_tls_12(tls_port, ca)
    assert context_12.startswith("TLSv1.2 ECDHE-") and "SIP/2.0 200" in context_12, context_12


def options_over_tls_12(port: int, authority: TestCa) -> str:
    """options_over_tls capped at TLS 1.2: the suite the front picks then (forward-secret only)."""
    trunk = authority.issue("trunk-1.2")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(authority.certificate)
    context.load_cert_chain(trunk.certificate, trunk.private_key)
    with socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_SECONDS) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"OPTIONS sip:{NUMBER}@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                     "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls12\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\nCall-ID: tls12\r\n"
                     "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
        cipher = tls.cipher()
        return f"{tls.version()} {cipher[0] if cipher else ''}: {tls.recv(4096).decode(errors='replace')}"


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused(fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
                                     version: str) -> None:
    edge, tls_port = fronted_tls_edge
    trunk = ca.issue("trunk-old")
    # The client's own floor lowered (Debian's OpenSSL allows neither by default): the refusal is the front's.
    client = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}", version, "-cipher", "DEFAULT:@SECLEVEL=0",
         "-cert", str(trunk.certificate), "-key", str(trunk.private_key), "-CAfile", str(ca.certificate)],
        input=b"", capture_output=True, timeout=HANDSHAKE_SECONDS, check=False)
    said = (client.stdout + client.stderr).decode(errors="replace")
    assert client.returncode != 0 and "Cipher is (NONE)" in said, f"{said}\n{edge.log()}"
    assert "protocol version" in said, said  # the server's alert, not a client that would not try


@pytest.mark.parametrize("certificate", ["none", "another CA's"])
def test_a_tls_caller_without_a_trusted_certificate_is_refused_by_the_front(
    fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path, certificate: str,  # noqa: F811
) -> None:
    edge, tls_port = fronted_tls_edge
    trusted = options_over_tls(tls_port, ca, ca.issue("trunk"))
    assert "SIP/2.0 200" in trusted, f"{trusted}\n{edge.log()}"
    client = TestCa(tmp_path, "a stranger's CA").issue("stranger") if certificate != "none" else None
    refused = options_over_tls(tls_port, ca, client)
    assert refused.startswith("refused") or refused == "closed", refused


def stranger_invite_over_tls(port: int, authority: TestCa) -> int:
    """An INVITE over TLS from 127.0.0.2, which no trunk's sources allow, with a certificate the edge
    trusts: the front's final answer."""
    trunk = authority.issue("stranger-with-a-good-certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(authority.certificate)
    context.load_cert_chain(trunk.certificate, trunk.private_key)
    body = SDP_HEAD + SAVP
    with socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_SECONDS,
                                  source_address=(STRANGER, 0)) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        local = tls.getsockname()
        tls.sendall((f"INVITE sip:{NUMBER}@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                     f"Via: SIP/2.0/TLS {local[0]}:{local[1]};branch=z9hG4bK-stranger;rport\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:+14155550100@{STRANGER}>;tag=s\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\n"
                     "Call-ID: stranger-tls\r\nCSeq: 1 INVITE\r\n"
                     f"Contact: <sip:s@{local[0]}:{local[1]};transport=tls>\r\n"
                     f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        received = ""
        while not any(200 <= status_of(m) for m in received.split("\r\n\r\n") if m.startswith("SIP/2.0")):
            chunk = tls.recv(65535).decode(errors="replace")
            if not chunk:
                return 0
            received += chunk
        return max(status_of(m) for m in received.split("\r\n\r\n") if m.startswith("SIP/2.0"))


def test_a_stranger_over_tls_is_refused_403_as_over_udp(
    fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
) -> None:
    edge, tls_port = fronted_tls_edge
    assert stranger_invite_over_tls(tls_port, ca) == 403, edge.log()


def test_a_churn_of_bare_connects_leaves_the_front_answering(
    fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
) -> None:
    """A few hundred connects opened and closed (what aborts one PJSIP process's TLS listener): the
    front lives, and a trunk's TLS request is answered after them."""
    edge, tls_port = fronted_tls_edge
    for _ in range(CHURN):
        with socket.create_connection(("127.0.0.1", tls_port), timeout=HANDSHAKE_SECONDS):
            pass
    answer = options_over_tls(tls_port, ca, ca.issue("trunk-after-churn"))
    assert "SIP/2.0 200" in answer and edge.process.poll() is None, f"{answer}\n{edge.log()}"


def test_a_reinvite_through_the_front_that_drops_srtp_or_leaves_tls_is_488_and_the_call_goes_on(
    fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
) -> None:
    """One call, re-INVITEd over TLS offering RTP, then over UDP offering SRTP: each 488 and the call still up,
    still keyed. The worker hears both over loopback UDP: it tells them apart by the hop the front reports."""
    edge, tls_port = fronted_tls_edge
    tls_leg, udp_leg = Leg(tls_port, "TLS", ca.issue("trunk"), ca), Leg(edge.sip_port, "TLS")  # UDP, Via forged
    try:
        call = SecureCall(NUMBER)
        answered = call.invite(tls_leg, SAVP)
        assert status_of(answered[-1]) == 200 and keys_in(answered), f"{answered}\n{edge.log()}"
        for over, leg, sdp in (("tls", tls_leg, AVP), ("udp", udp_leg, SAVP)):
            refused = call.request(leg, "INVITE", sdp)
            call.acknowledge(leg)
            assert status_of(refused[-1]) == 488 and keys_in(refused) == [], f"{over}: {refused}\n{edge.log()}"
            kept = call.request(tls_leg, "INVITE", SAVP)  # the call is still up, still keyed, over TLS
            call.acknowledge(tls_leg)
            assert status_of(kept[-1]) == 200 and keys_in(kept), f"after {over}: {kept}\n{edge.log()}"
        assert status_of(call.request(tls_leg, "BYE")[-1]) == 200
    finally:
        tls_leg.close()
        udp_leg.close()


# Last in the file: it stops the module's edge (pytest-xdist runs a file's tests on one worker, in this order).
async def test_the_edges_bye_reaches_a_tls_caller_on_its_connection(
    parrot_dispatcher: DispatcherProcess, fronted_tls_edge: tuple[EdgeProcess, int], ca: TestCa,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The edge stopped mid-call: each worker hangs up, its BYE relayed by the front over the caller's
    own TLS connection (the caller's Contact names a port nothing listens on for TLS)."""
    edge, tls_port = fronted_tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca), SRTP) as phone:
        async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
            await wait_for_idle_bot(api)
        answered = dial(phone, NUMBER, tls_port, ";transport=tls")
        assert answered["type"] == "CALL_ESTABLISHED", f"{answered}\n{edge.log()}\n{phone.log()}"
        edge.process.send_signal(signal.SIGTERM)  # the edge's drain_seconds = 0: it hangs the call up at once
        closed = phone.wait_event("CALL_CLOSED", timeout=CALL_SECONDS)
        # libre ends a session on the peer's BYE with ECONNRESET (sipsess's BYE handler); a TLS connection
        # that merely closed leaves the session up, and its own WAV's end would say "end of file".
        assert closed.get("param") == "Connection reset by peer", f"{closed}\n{edge.log()}\n{phone.log()}"
