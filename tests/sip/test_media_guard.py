"""Only the call's trunk moves a call's media (tests/sip/pjsip_offer_probe.py: the edge's SipCall in a
real PJSUA2 endpoint): a stranger who knows the dialog's ids has its UPDATE's offer and its re-INVITE
refused 488, and its re-INVITE without an offer (whose answer would come in the ACK) ends the call
rather than taking it over, however its request line is spaced (PJSIP parses a leading space and a tab
after the method as INVITE too)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.sip.pjsip_offer_probe import LINE_FORMS
from tests.support.ports import free_port

PROBE_SECONDS = 60


def test_a_stranger_cannot_move_the_calls_media_by_update_or_an_offerless_reinvite() -> None:
    # A probe per spelling of the request line, all at once: each listens for answers over fixed windows
    # (seconds of waiting, a fraction of a second of CPU), so together they take one probe's time.
    probes = {form: subprocess.Popen([sys.executable, "-m", "tests.sip.pjsip_offer_probe",
                                      str(free_port(socket.SOCK_DGRAM)), form],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
              for form in sorted(LINE_FORMS)}
    try:
        ran = {form: probe.communicate(timeout=PROBE_SECONDS) for form, probe in probes.items()}
    finally:
        for probe in probes.values():
            probe.kill()  # one past its bound (or a failure reading another) leaves no process behind
            probe.wait()
    for form, (out, err) in ran.items():
        assert probes[form].returncode == 0, f"{form}: {out[-3000:]}{err[-3000:]}"
        steps = {step["step"]: step for step in json.loads(out.strip().splitlines()[-1])}
        assert steps["answered"]["rtp"] == "127.0.0.20:30000", form
        assert steps["trunk INVITE"]["rtp"] == "127.0.0.20:30010", form  # the trunk itself may move it
        assert steps["stranger UPDATE"]["answers"][0] == "SIP/2.0 488 Not Acceptable Here", form
        assert steps["stranger UPDATE"]["rtp"] == "127.0.0.20:30010", form
        assert steps["stranger INVITE"]["answers"][0] == "SIP/2.0 488 Not Acceptable Here", form
        assert steps["stranger INVITE"]["rtp"] == "127.0.0.20:30010", form
        assert steps["stranger INVITE without an offer"]["rtp"] is None, form  # ended, never sent to the stranger
        assert "the call is ended" in err + out, form
