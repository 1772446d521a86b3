"""The edge's TLS as docs/sip.md configures it by default: no `tls_ca_file`, no client certificates.
Its listener must then complete a handshake with anyone the firewall lets through (PJSIP sends a
listener's CA list to every client, and with the system's whole bundle no handshake completed), and
agree on a forward-secret suite only. No dispatcher: PJSIP answers OPTIONS itself."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.certificates import TestCa
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.test_edge_start import start
from tests.sip.test_tls import options_over_tls
from tests.support.ports import free_port, free_port_pair

pytestmark = pytest.mark.slow  # the edge's process
NO_DISPATCHER = "http://127.0.0.1:9"  # never asked: no call is placed


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def default_tls_edge(ca: TestCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, int]]:
    server = ca.issue("edge")
    tls_port = free_port()
    settings = (f'tls_port = {tls_port}\ntls_certificate_file = "{server.certificate}"\n'
                f'tls_private_key_file = "{server.private_key}"\ntls_port_firewalled = true')  # loopback only
    with run_edge(NO_DISPATCHER, tmp_path_factory.mktemp("sip-tls-default"), settings=settings) as running:
        yield running, tls_port


def test_with_tls_ca_file_unset_a_client_without_a_certificate_gets_its_answer(
    default_tls_edge: tuple[EdgeProcess, int], ca: TestCa, tmp_path: Path,
) -> None:
    edge, tls_port = default_tls_edge
    answer = options_over_tls(tls_port, ca, None)
    assert answer.startswith("TLSv1.2 ECDHE-") and "SIP/2.0 200" in answer, f"{answer}\n{edge.log()}"


def test_more_srtp_numbers_than_pjsuas_accounts_stop_the_edge_with_the_count(ca: TestCa, tmp_path: Path) -> None:
    """Each number of a `mandatory` trunk takes one of PJSUA's 8 accounts: a ninth is named at start."""
    server = ca.issue("edge")
    numbers = ", ".join(f'"+1415555{index:04d}" = ""' for index in range(8))
    config = tmp_path / "edge.toml"
    config.write_text(f'sip_port = {free_port(socket.SOCK_DGRAM)}\nrtp_port = {free_port_pair(4)}\nrtp_port_count = 4\n'
                      f'tls_port = {free_port()}\ntls_certificate_file = "{server.certificate}"\n'
                      f'tls_private_key_file = "{server.private_key}"\ntls_port_firewalled = true\n\n'
                      f'[[trunk]]\nname = "t"\nsources = ["127.0.0.1/32"]\nnumbers = {{ {numbers} }}\n'
                      'srtp = "mandatory"\n')
    done = start({**os.environ, "SIP_EDGE_CONFIG": str(config)})
    assert done.returncode == 1, done.stderr
    assert "PJSUA keeps 8 accounts and the edge needs 9" in done.stderr and "Traceback" not in done.stderr
