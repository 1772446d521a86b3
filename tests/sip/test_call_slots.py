"""A call's PJSUA2 object is gone once PJSUA ended the call (tests/sip/pjsip_slot_probe.py: the edge's
SIP stack in a real PJSUA2 endpoint). PJSUA gives an ended call's slot to the next INVITEs, while a
call's flow may hold the ended call's object for seconds more (telling the dispatcher how it ended,
closing its stream): that object, dropped late, must not touch the new call in its slot. PJSUA2's own
destructor would unhook whichever call has the slot from the edge and hang it up, and the edge would
never hear that call end: its admission slot never given back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from sipedge.stack import PJSUA_CALLS
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def test_an_ended_calls_object_dropped_late_leaves_the_new_call_in_its_slot_alone() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_slot_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(2 * PJSUA_CALLS))],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed = json.loads(run.stdout.strip().splitlines()[-1])
    assert probed["reused_slot"] == probed["slot"]
    assert probed["ended_seen"], probed  # the stack heard the new call end: its slot is given back
    assert probed["finals"] == [486], probed  # the edge's own answer, not PJSUA2's hang-up of it
