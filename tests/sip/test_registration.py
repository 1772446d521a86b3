"""A trunk that wants the edge to register: the edge answers the registrar's digest challenge with
the credential whose password its environment holds (the TOML names only the variable)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sip.conftest import NUMBER
from tests.sip.sipp import HERE, SIPP_SECONDS
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import terminate

PASSWORD = "trunk-secret-0123"  # registrar.xml checks this one


def register_once(tmp_path: Path, password: str) -> str:
    """The registrar's trace after the edge, given `password`, registered with it (or failed to)."""
    if shutil.which("sipp") is None:
        pytest.skip("SIPp is not installed (Debian's sip-tester: .ci/run installs it)")
    registrar_port, edge_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    trace = tmp_path / "registrar.messages"
    registrar = subprocess.Popen(
        ["sipp", "-sf", str(HERE / "registrar.xml"), "-i", "127.0.0.1", "-p", str(registrar_port), "-m", "1",
         "-nostdin", "-timeout", str(SIPP_SECONDS), "-trace_msg", "-message_file", str(trace)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "edge.toml"
    config.write_text(
        f'sip_port = {edge_port}\nrtp_port = {free_port_pair(4)}\nrtp_port_count = 4\n\n[[trunk]]\nname = "pbx"\n'
        f'sources = ["127.0.0.1/32"]\nnumbers = {{ "{NUMBER}" = "" }}\nregistrar = "sip:127.0.0.1:{registrar_port}"\n'
        f'digest_username = "edge"\ndigest_password_env = "SIP_TEST_TRUNK_PASSWORD"\n')
    with open(tmp_path / "edge.log", "wb") as log:
        edge = subprocess.Popen([sys.executable, "-m", "sipedge"], stdout=log, stderr=log,
                                env={**os.environ, "SIP_EDGE_CONFIG": str(config), "SIP_TEST_TRUNK_PASSWORD": password})
    try:
        registrar.wait(SIPP_SECONDS + 10)  # one registration: challenged, answered, judged
    finally:
        terminate(edge)
        terminate(registrar)
    return trace.read_text(errors="replace") if trace.exists() else (tmp_path / "edge.log").read_text()


def sent_statuses(trace: str) -> list[str]:
    return [block.split("\n\n", 1)[1].splitlines()[0] for block in trace.split("-" * 47)
            if "message sent" in block and "\n\n" in block]


def test_the_edge_registers_with_its_trunks_digest_credential(tmp_path: Path) -> None:
    assert sent_statuses(register_once(tmp_path, PASSWORD)) == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"]


def test_a_wrong_password_is_what_the_registrar_refuses(tmp_path: Path) -> None:
    assert sent_statuses(register_once(tmp_path, "not-the-password"))[-1] == "SIP/2.0 403 Forbidden"
