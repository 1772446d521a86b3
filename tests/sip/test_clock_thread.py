"""PJSIP's media clock calls the edge's port twice a tick from a thread Python did not start: its Python
thread state is made once and kept (sipedge/clock_thread.py), not made and destroyed around every callback;
and once PJSUA has ended that thread after an idle second, the state it kept is freed when the next clock
thread keeps its own (tests/sip/pjsip_clock_probe.py: a real PJSUA2 endpoint and its conference bridge)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from typing import Any

from sipedge import clock_thread
from sipedge.clock_thread import keep_thread_state
from sipedge.stack import PJSUA_CALLS
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def probe() -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_clock_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(2 * PJSUA_CALLS))],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return probed


def test_each_clock_thread_keeps_one_python_thread_state_and_an_ended_ones_is_freed() -> None:
    probed = probe()
    # Two ports of a second each: about 200 callbacks (fewer on a starved host, which delays the clock).
    assert probed["callbacks"] >= 20, probed
    assert probed["clock_threads"] == 2, probed  # the idle 2 s between the ports ended the first clock thread
    assert probed["new_states"] == 2, probed  # one state for each thread's life, not one per callback
    first, second = probed["thread_states"]
    assert second == first, probed  # the second clock thread's state held, the first one's freed


def test_a_thread_python_started_keeps_its_own_state_untouched() -> None:
    """A callback on a thread of Python's own (a test's, the SIP thread's) holds nothing: Python frees that
    thread's state itself as the thread ends, and a state held and freed again would be freed twice."""
    for _ in range(3):
        thread = threading.Thread(target=keep_thread_state)
        thread.start()
        thread.join()
    keep_thread_state()
    assert clock_thread._held_before == []
