"""Only the call's trunk reports a REFER's progress (tests/sip/pjsip_notify_probe.py: the edge's SipCall in a
real PJSUA2 endpoint, configured as the edge's stack is): a stranger who knows the dialog's ids sends a NOTIFY
whose sipfrag says the person answered, and the edge neither hangs its caller up nor hears it, while the
trunk's own NOTIFYs still reach the transfer (also after a stranger's NOTIFY that no REFER waited for);
an unsolicited NOTIFY outside any dialog gets no answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.support.ports import free_port

PROBE_SECONDS = 60


def test_a_strangers_notify_is_ignored_and_counted_and_the_trunks_still_report_the_transfer() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_notify_probe", str(free_port(socket.SOCK_DGRAM))],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = {step["step"]: step for step in json.loads(run.stdout.strip().splitlines()[-1])}
    # A stranger's NOTIFY with no REFER waiting: PJSIP's own 500, and the REFER's reports after it still heard.
    assert steps["stranger NOTIFY before a REFER"]["answers"][0].startswith("SIP/2.0 500 ")
    assert steps["REFER accepted"]["told"] == [[100, False]]
    assert steps["stranger NOTIFY 200 OK"]["told"] == []  # never reported: the transfer did not succeed
    assert steps["trunk NOTIFY 180 Ringing"]["told"] == [[180, False]]
    assert steps["trunk NOTIFY 200 OK"]["told"] == [[200, True]]
    # PJSUA answers a voicemail summary 200 by default; the edge's stack leaves it unanswered.
    assert [a for a in steps["stranger NOTIFY outside a dialog"]["answers"] if a.startswith("SIP/2.0")] == []
    assert steps["counted"] == {"step": "counted", "ignored": ["NOTIFY 127.0.0.99"] * 2, "ended": False}
