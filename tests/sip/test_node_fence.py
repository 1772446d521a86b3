"""The edge's node fence (sipedge/node_fence.py), run as the process it is: it fails, naming the nftables
table, when an endpoint it tries answers, and passes when each refuses."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sipedge.node_fence import ENDPOINTS
from tests.support.ports import free_port


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends: nothing listens there


def _fence(*endpoints: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sipedge.node_fence", *endpoints], capture_output=True, text=True,
                          timeout=30, check=False)


def test_an_endpoint_that_answers_stops_the_edge_naming_the_table(listener: int) -> None:
    closed = _closed_port()
    ran = _fence(f"127.0.0.1:{closed}", f"127.0.0.1:{listener}")
    assert ran.returncode == 1
    assert f"127.0.0.1:{listener}" in ran.stderr and f"127.0.0.1:{closed}" not in ran.stderr
    assert "docs/sip.md#on-kubernetes" in ran.stderr


def test_endpoints_that_refuse_let_the_edge_start() -> None:
    ran = _fence(f"127.0.0.1:{_closed_port()}", f"[::1]:{_closed_port()}")
    assert (ran.returncode, ran.stderr) == (0, "")


def test_a_malformed_endpoint_is_refused_naming_the_form() -> None:
    ran = _fence("169.254.169.254")
    assert ran.returncode != 0 and "is not HOST:PORT" in ran.stderr


def test_by_default_it_tries_every_credential_and_loopback_endpoint_the_table_refuses() -> None:
    hosts = {host for host, _ in ENDPOINTS}
    assert {"169.254.169.254", "168.63.129.16", "fd00:ec2::254", "::1", "127.0.0.1"} <= hosts


def test_a_fronted_pods_own_loopback_ports_reached_let_the_edge_start() -> None:
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    ran = _fence(f"127.0.0.1:{_closed_port()}", "--admitted", f"udp:{udp}", "--admitted", f"tcp:{tcp}-{tcp}")
    assert (ran.returncode, ran.stderr) == (0, "")


def test_a_workers_loopback_port_it_cannot_reach_stops_the_edge_naming_the_table() -> None:
    """Reached means a listener of the fence's own took the try: a port it cannot have is not reached either."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        ran = _fence(f"127.0.0.1:{_closed_port()}", "--admitted", f"udp:{port}")
    assert ran.returncode == 1
    assert f"UDP 127.0.0.1:{port}" in ran.stderr and "docs/sip.md#on-kubernetes" in ran.stderr


@pytest.mark.parametrize("admitted", [["--admitted"], ["--admitted", "sctp:5061"], ["--admitted", "udp:50x"]])
def test_a_malformed_admitted_range_is_refused_naming_the_form(admitted: list[str]) -> None:
    ran = _fence(*admitted)
    assert ran.returncode != 0 and "udp:PORT[-PORT] or tcp:PORT[-PORT]" in ran.stderr
