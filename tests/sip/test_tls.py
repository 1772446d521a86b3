"""SIP over TLS with SRTP, against `python -m sipedge` and Debian's baresip as the caller (SIPp here
has no TLS). The edge's certificates come from a CA made at test time (tests/sip/certificates.py);
it requires a client certificate from that CA. Two trunks share loopback: `loopback` serves
+14155550199 with SRTP mandatory, `plain` serves +14155550198 without SRTP, over UDP as before."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.phone.conftest import wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.baresip_agent import Baresip, run_baresip
from tests.sip.certificates import Issued, TestCa
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.test_baresip import CALL_SECONDS, RATE, write_caller_wav
from tests.support.audio import echo_similarity, read_wav
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, baresip, a bot process importing Pipecat and Silero

PLAIN_NUMBER = "+14155550198"  # a trunk whose SRTP is off
OPTIONAL_NUMBER = "+14155550197"  # a trunk whose SRTP is optional
# baresip offers RTP/SAVP with SDES keys and takes nothing else: its call is established only when the
# edge answered with keys of its own (an edge without SRTP answers it 488).
SRTP = ";mediaenc=srtp-mand"
PROBE_SECONDS = 10.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_edge(parrot_dispatcher: DispatcherProcess, ca: TestCa,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, int]]:
    """The edge with TLS on a port of its own, verifying callers' certificates; (the edge, its TLS port)."""
    server = ca.issue("edge")
    tls_port = free_port()
    settings = (f'tls_port = {tls_port}\ntls_certificate_file = "{server.certificate}"\n'
                f'tls_private_key_file = "{server.private_key}"\ntls_ca_file = "{ca.certificate}"\n'
                "tls_verify_client = true\ntls_port_firewalled = true")  # loopback only
    plain = (f'[[trunk]]\nname = "plain"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{PLAIN_NUMBER}" = "" }}\n'
             f'[[trunk]]\nname = "optional"\nsources = ["127.0.0.1/32"]\nsrtp = "optional"\n'
             f'numbers = {{ "{OPTIONAL_NUMBER}" = "" }}\n')
    with run_edge(parrot_dispatcher, tmp_path_factory.mktemp("sip-tls-edge"), settings=settings,
                  trunk_settings='srtp = "mandatory"', trunks=plain) as running:
        yield running, tls_port


def tls_lines(folder: Path, ca: TestCa, client: TestCa | None) -> str:
    """baresip's TLS lines: the edge's CA to check it by, and a certificate from `client`'s CA, if any."""
    lines = f"sip_cafile\t\t{ca.certificate}\nmodule\t\t\tsrtp.so\n"
    if client is not None:
        lines += f"sip_certificate\t\t{client.issue('caller').combined(folder / 'caller.pem')}\n"
    return lines


def dial(phone: Baresip, number: str, port: int, transport: str = "") -> dict[str, object]:
    """Dials `number` at the edge; baresip's first answer: CALL_ESTABLISHED or CALL_CLOSED."""
    dialled = phone.command("dial", f"sip:{number}@127.0.0.1:{port}{transport}")
    assert dialled["ok"], dialled
    return phone.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=CALL_SECONDS)


async def hear_call_back(phone: Baresip, parrot_dispatcher: DispatcherProcess, edge: EdgeProcess,
                         folder: Path, number: str, port: int, transport: str) -> None:
    """A call answered and heard back: the parrot says the caller's words, baresip records them."""
    speech = write_caller_wav(folder / "caller.wav")
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        answered = dial(phone, number, port, transport)
        assert answered["type"] == "CALL_ESTABLISHED", f"{answered}\n{edge.log()}\n{phone.log()}"
        closed = phone.wait_event("CALL_CLOSED", timeout=CALL_SECONDS)  # the WAV ended: baresip's BYE
        assert "end of file" in str(closed.get("param", "")), f"{closed}\n{edge.log()}"
        assert await wait_active_sessions(api, 0) == 0
    [recording] = phone.recordings("dec")
    similarity = echo_similarity(voiced(speech), read_wav(recording).samples, RATE)
    assert similarity > 0.6, f"the caller's words came back at {similarity:.2f}\n{edge.log()}\n{phone.log()}"


async def test_a_call_over_tls_with_srtp_is_answered_and_heard_back(
    parrot_dispatcher: DispatcherProcess, tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path,
) -> None:
    edge, tls_port = tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca), SRTP) as phone:
        await hear_call_back(phone, parrot_dispatcher, edge, tmp_path, NUMBER, tls_port, ";transport=tls")


@pytest.mark.parametrize("transport", [";transport=tls", ""])
def test_an_rtp_offer_to_a_mandatory_srtp_trunk_gets_488(
    tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path, transport: str,
) -> None:
    edge, tls_port = tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca)) as phone:
        closed = dial(phone, NUMBER, tls_port if transport else edge.sip_port, transport)
    assert closed["type"] == "CALL_CLOSED" and "488" in str(closed.get("param")), \
        f"{closed}\n{edge.process.poll()}\n{edge.log()}\n{phone.log()}"


def test_an_srtp_offer_to_the_trunk_whose_srtp_is_off_gets_488_not_srtp(
    tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path,
) -> None:
    """The `plain` trunk shares the edge's own account, whose SRTP is optional since `loopback` has
    SRTP: PJSIP alone would answer baresip's RTP/SAVP offer over UDP with keys. (A plain UDP call answered and
    heard back beside TLS: test_tls_workers.py's, through the front; without TLS, test_baresip.py's.)"""
    edge, _ = tls_edge
    write_caller_wav(tmp_path / "caller.wav")
    with run_baresip(tmp_path, tmp_path / "caller.wav", tls_lines(tmp_path, ca, ca), SRTP) as phone:
        closed = dial(phone, PLAIN_NUMBER, edge.sip_port)
    assert closed["type"] == "CALL_CLOSED" and "488" in str(closed.get("param")), \
        f"{closed}\n{edge.process.poll()}\n{edge.log()}\n{phone.log()}"


def options_over_tls(port: int, ca: TestCa, client: Issued | None,
                     least: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> str:
    """An OPTIONS request over TLS (`least` its oldest version) presenting `client`'s certificate (or
    none); the edge's answer, or why the connection failed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = least
    context.load_verify_locations(ca.certificate)
    if client is not None:
        context.load_cert_chain(client.certificate, client.private_key)
    request = (f"OPTIONS sip:{NUMBER}@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
               "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-probe\r\nMax-Forwards: 70\r\n"
               f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\nCall-ID: tls-probe\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_SECONDS) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request.encode())
            answer = tls.recv(4096).decode(errors="replace")
            cipher = tls.cipher()
            return f"{tls.version()} {cipher[0] if cipher else ''}: {answer}" if answer else "closed"
    except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
        return f"refused: {exc!r}"


@pytest.mark.parametrize("certificate", ["none", "another CA's"])
def test_a_tls_caller_without_a_trusted_certificate_is_refused(
    tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path, certificate: str,
) -> None:
    edge, tls_port = tls_edge
    trusted = options_over_tls(tls_port, ca, ca.issue("trunk"))
    assert trusted.startswith("TLSv1.2 ") and "SIP/2.0 200" in trusted, f"{trusted}\n{edge.log()}"
    client = TestCa(tmp_path, "a stranger's CA").issue("stranger") if certificate != "none" else None
    refused = options_over_tls(tls_port, ca, client)
    assert refused.startswith("refused") or refused == "closed", refused


def test_tls_1_2_is_the_newest_the_edge_speaks(tls_edge: tuple[EdgeProcess, int], ca: TestCa) -> None:
    """The wheel's OpenSSL 1.0.2k has no TLS 1.3 (docs/sip.md#tls-and-srtp): a client that asks for it is refused."""
    edge, tls_port = tls_edge
    trunk = ca.issue("trunk")
    assert options_over_tls(tls_port, ca, trunk).startswith("TLSv1.2 "), edge.log()  # the same client, 1.2 allowed
    answer = options_over_tls(tls_port, ca, trunk, least=ssl.TLSVersion.TLSv1_3)
    assert answer.startswith("refused"), answer
