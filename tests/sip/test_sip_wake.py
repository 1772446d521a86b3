"""The SIP thread waits in PJSIP's poll up to POLL_MS rather than coming out every 10 ms to look for work,
and work handed to it wakes it at once (tests/sip/pjsip_wake_probe.py: a real PJSUA2 endpoint): a
datagram of CRLFs to its own SIP port, which PJSIP skips as a keep-alive. Where a firewall refuses or
drops that datagram, the edge says so and polls every EVENT_POLL_MS again."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from sipedge.sip_wake import PING, POLL_MS, SipWake
from sipedge.stack import EVENT_POLL_MS, PJSUA_CALLS
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def probe(poll_ms: int) -> dict[str, float | str | None]:
    return probed_with_log(poll_ms, "sent")[0]


def probed_with_log(poll_ms: int, wake: str, sip_port: int = 0) -> tuple[dict[str, float | str | None], str]:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_wake_probe",
                          str(sip_port or free_port(socket.SOCK_DGRAM)), str(free_port_pair(2 * PJSUA_CALLS)),
                          str(poll_ms), wake],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed: dict[str, float | str | None] = json.loads(run.stdout.strip().splitlines()[-1])
    return probed, run.stderr


def test_the_idle_sip_thread_polls_a_few_times_a_second_not_a_hundred() -> None:
    probed = probe(POLL_MS)
    assert isinstance(probed["idle_rounds"], int) and probed["idle_rounds"] <= 2 * 1000 / POLL_MS, probed
    assert probed["work_ran_after_s"] is not None and probed["wake_failed"] is None, probed


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


@pytest.mark.parametrize("wake", ["refused", "dropped"])
def test_where_a_firewall_stops_the_wake_up_the_edge_says_what_to_allow_and_polls_often_again(wake: str) -> None:
    """Refused (a reject rule: EPERM as it is sent) or dropped (nothing comes back): either way the stack
    finds it out as it starts, logs the traffic to allow, and handed-over work waits about EVENT_POLL_MS,
    not the long poll (whose wait, the submits falling anywhere in it, is about POLL_MS / 2)."""
    sip_port = free_port(socket.SOCK_DGRAM)
    probed, log = probed_with_log(POLL_MS, wake, sip_port)
    assert probed["wake_failed"] is not None, probed
    assert f"allow UDP from 127.0.0.1 to 127.0.0.1:{sip_port} (the edge sends to its own SIP port)" in log, log
    assert log.count("allow UDP from") == 1, log  # said once, not at every wake-up
    median = probed["wait_ms_median"]
    assert isinstance(median, float) and median < max(3 * EVENT_POLL_MS, POLL_MS / 3), probed
