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

import pytest

from tests.sip.pjsip_offer_probe import LINE_FORMS
from tests.support.ports import free_port

PROBE_SECONDS = 60


@pytest.mark.parametrize("form", sorted(LINE_FORMS))
def test_a_stranger_cannot_move_the_calls_media_by_update_or_an_offerless_reinvite(form: str) -> None:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_offer_probe", str(free_port(socket.SOCK_DGRAM)),
                          form],
                         capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = {step["step"]: step for step in json.loads(run.stdout.strip().splitlines()[-1])}
    assert steps["answered"]["rtp"] == "127.0.0.20:30000"
    assert steps["trunk INVITE"]["rtp"] == "127.0.0.20:30010"  # the trunk itself may move it
    assert steps["stranger UPDATE"]["answers"][0] == "SIP/2.0 488 Not Acceptable Here"
    assert steps["stranger UPDATE"]["rtp"] == "127.0.0.20:30010"
    assert steps["stranger INVITE"]["answers"][0] == "SIP/2.0 488 Not Acceptable Here"
    assert steps["stranger INVITE"]["rtp"] == "127.0.0.20:30010"
    assert steps["stranger INVITE without an offer"]["rtp"] is None  # ended, never sent to the stranger
    assert "the call is ended" in run.stderr + run.stdout
