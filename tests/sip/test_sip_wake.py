"""The SIP thread waits in PJSIP's poll up to POLL_MS rather than coming out every 10 ms to look for work,
and work handed to it wakes it at once (tests/sip/pjsip_wake_probe.py: a real PJSUA2 endpoint): a
datagram of CRLFs to its own SIP port, which PJSIP skips as a keep-alive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from sipedge.sip_wake import PING, POLL_MS, SipWake
from sipedge.stack import PJSUA_CALLS
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def probe(poll_ms: int) -> dict[str, float | None]:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_wake_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(2 * PJSUA_CALLS)), str(poll_ms)],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed: dict[str, float | None] = json.loads(run.stdout.strip().splitlines()[-1])
    return probed


def test_the_idle_sip_thread_polls_a_few_times_a_second_not_a_hundred() -> None:
    probed = probe(POLL_MS)
    assert probed["idle_rounds"] is not None and probed["idle_rounds"] <= 2 * 1000 / POLL_MS, probed
    assert probed["work_ran_after_s"] is not None, probed


def test_work_handed_over_wakes_the_sip_thread_out_of_a_long_poll() -> None:
    """With a poll of ten minutes, the work runs all the same: only the wake-up can have woken it."""
    probed = probe(600_000)
    assert probed["work_ran_after_s"] is not None, probed  # within the probe's 10 s, not the poll's 600


def test_the_wake_up_is_a_keepalive_to_the_sip_port_also_when_bound_to_any_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip:
        sip.bind(("127.0.0.1", 0))
        sip.settimeout(5)
        for bound in ("127.0.0.1", "0.0.0.0"):  # noqa: S104
            wake = SipWake(bound, sip.getsockname()[1])
            wake.wake()
            wake.close()
            assert sip.recv(64) == PING
