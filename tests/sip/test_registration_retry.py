"""A registrar that answers `503 Service Unavailable` for a few seconds (its own brief maintenance) leaves
the edge's trunk `refused` until PJSUA's next try. PJSUA's default retry interval
(`AccountRegConfig.retryIntervalSec`, 300 s) left it so for five minutes (measured: REGISTERs at 0 s, 8 s, then
315 s), inbound calls through the trunk failing and `SipEdgeRegistrationsRefused` above 0 past the stacks'
3-minute `sip-edge-registration-refused` alarm (stacks/shared/sip_edge_alarms.py). The edge tries again within
the trunk's `registrar_retry_seconds` (half a minute unless set, give or take a third), so a registrar's blip
stays below the alarm. The test sets it short: its REGISTERs come seconds apart."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipedge.config import TrunkFile
from stacks.shared.sip_edge_alarms import SIP_EDGE_ALARMS
from tests.sip.conftest import NUMBER
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import terminate

CLEARED_WITHIN_SECONDS = 120.0  # a refusal cleared in this long leaves at least one clean minute in any 3
RETRY_SECONDS = 2  # the trunk's registrar_retry_seconds here
# A try due 2 s after the last comes within this on a busy machine, and PJSUA's default interval (300 s), or the
# edge's own 30 s less its third, never does.
RETRY_WITHIN_SECONDS = 15.0
TRIES = 3  # the first REGISTER, then two its retry interval times


def _answer(request: str, status: str) -> bytes:
    """A response to `request` as a registrar sends it: its Via, From, Call-ID and CSeq, its To tagged."""
    lines = request.split("\r\n")
    copied = [line for line in lines if line.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f",
                                                                                 "call-id", "i", "cseq")]
    to = next(line for line in lines if line.split(":", 1)[0].strip().lower() in ("to", "t"))
    head = [f"SIP/2.0 {status}", *copied, f"{to};tag=review503" if ";tag=" not in to else to,
            "Content-Length: 0"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def test_a_refused_register_is_tried_again_before_the_registration_alarm_fires(tmp_path: Path) -> None:
    alarm = next(a for a in SIP_EDGE_ALARMS if a.metric == "SipEdgeRegistrationsRefused")
    default = TrunkFile.model_fields["registrar_retry_seconds"].default
    assert default + default // 3 < CLEARED_WITHIN_SECONDS < alarm.minutes * 60  # the latest retry, jitter and all
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar_port = registrar.getsockname()[1]
    edge_port = free_port(socket.SOCK_DGRAM)
    config = tmp_path / "edge.toml"
    config.write_text(
        f'sip_port = {edge_port}\nrtp_port = {free_port_pair(4)}\nrtp_port_count = 4\n\n[[trunk]]\nname = "pbx"\n'
        f'sources = ["127.0.0.1/32"]\nnumbers = {{ "{NUMBER}" = "" }}\nregistrar = "sip:127.0.0.1:{registrar_port}"\n'
        f'digest_username = "edge"\ndigest_password_env = "SIP_TEST_TRUNK_PASSWORD"\n'
        f"registrar_retry_seconds = {RETRY_SECONDS}\n")
    registers: list[float] = []  # when each new REGISTER (a new CSeq) arrived
    seen: set[str] = set()
    with open(tmp_path / "edge.log", "wb") as log:
        edge = subprocess.Popen([sys.executable, "-m", "sipedge"], stdout=log, stderr=log,
                                env={**os.environ, "SIP_EDGE_CONFIG": str(config),
                                     "SIP_TEST_TRUNK_PASSWORD": "trunk-secret-0123"})
    try:
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            registrar.settimeout(max(0.1, (deadline or time.monotonic() + 60) - time.monotonic()))
            try:
                data, sender = registrar.recvfrom(65536)
            except TimeoutError:
                if deadline is None:
                    pytest.fail("the edge sent no REGISTER within 60 s: " + (tmp_path / "edge.log").read_text())
                break
            request = data.decode(errors="replace")
            if not request.startswith("REGISTER "):
                continue
            cseq = next(line for line in request.split("\r\n") if line.lower().startswith(("cseq:", "cseq ")))
            if cseq not in seen:  # a retransmission of one already answered is not a new try
                seen.add(cseq)
                registers.append(time.monotonic())
                deadline = registers[-1] + RETRY_WITHIN_SECONDS
            registrar.sendto(_answer(request, "503 Service Unavailable"), sender)
            if len(registers) >= TRIES:
                break
    finally:
        terminate(edge)
        registrar.close()
    assert len(registers) >= TRIES, (f"no REGISTER in {RETRY_WITHIN_SECONDS:g} s after try {len(registers)}'s 503, "
                                     f"with registrar_retry_seconds = {RETRY_SECONDS}: the trunk stays refused until "
                                     "a later retry")
