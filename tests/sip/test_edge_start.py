"""`python -m sipedge` that cannot start says why and exits non-zero: no configuration, or a SIP
address another process holds, its own or one of its workers'."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sipedge.supervisor import KAMAILIO
from tests.sip.conftest import NUMBER
from tests.support.ports import free_port_pair

START_SECONDS = 60


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m sipedge` run with `env` (the whole environment) to its exit."""
    return subprocess.run([sys.executable, "-m", "sipedge"], env=env, capture_output=True, text=True,
                          timeout=START_SECONDS, check=False)


def test_without_its_configuration_the_edge_names_the_variable_and_exits() -> None:
    done = start({name: value for name, value in os.environ.items() if name != "SIP_EDGE_CONFIG"})
    assert done.returncode == 1
    assert "SIP_EDGE_CONFIG is unset: set it to the edge's TOML file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sip_port_another_process_holds_is_named_and_the_edge_exits(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "edge.toml"
        config.write_text(f'sip_port = {port}\nrtp_port = {free_port_pair(4)}\nrtp_port_count = 4\n\n[[trunk]]\n'
                          f'name = "t"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{NUMBER}" = "" }}\n')
        done = start({**os.environ, "SIP_EDGE_CONFIG": str(config)})
    assert done.returncode == 1
    assert "the SIP stack did not start: Address already in use" in done.stderr
    assert f"SIP on udp 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_edge_whose_file_names_its_address_variable_binds_the_address_it_holds(tmp_path: Path) -> None:
    """As a Kubernetes pod on its node's network starts: the node's address arrives in a variable (here
    127.0.0.2, not the file's default 127.0.0.1), and PJSIP binds it, as the port held there shows."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.2", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "edge.toml"
        config.write_text(f'sip_address_env = "NODE_ADDRESS"\nsip_port = {port}\nrtp_port = {free_port_pair(4)}\n'
                          f'rtp_port_count = 4\n\n[[trunk]]\nname = "t"\nsources = ["127.0.0.1/32"]\n'
                          f'numbers = {{ "{NUMBER}" = "" }}\n')
        done = start({**os.environ, "SIP_EDGE_CONFIG": str(config), "NODE_ADDRESS": "127.0.0.2"})
    assert done.returncode == 1
    assert f"SIP on udp 127.0.0.2:{port}" in done.stderr and "Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not os.access(KAMAILIO, os.X_OK), reason="Kamailio is not installed (.ci/run installs it)")
def test_a_workers_port_another_process_holds_is_named_and_the_whole_edge_exits(tmp_path: Path) -> None:
    workers = free_port_pair(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", workers + 1))
        config = tmp_path / "edge.toml"
        config.write_text(f"sip_port = {free_port_pair(1)}\nrtp_port = {free_port_pair(16)}\nrtp_port_count = 16\n"
                          f"workers = 2\nworker_sip_port = {workers}\n\n[[trunk]]\n"
                          f'name = "t"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{NUMBER}" = "" }}\n')
        # A temporary folder of its own: other edges on the host (other tests') have their fronts' folders.
        temporary = tmp_path / "tmp"
        temporary.mkdir()
        done = start({**os.environ, "SIP_EDGE_CONFIG": str(config), "TMPDIR": str(temporary)})
    assert done.returncode == 1
    assert "sipedge: the edge did not start: worker 1 exited before it was ready" in done.stderr
    assert "the SIP stack did not start: Address already in use" in done.stderr  # the worker's own line
    assert f"SIP on udp 127.0.0.1:{workers + 1})" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(temporary.iterdir())  # its front's folder went with it
