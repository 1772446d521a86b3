"""A trunk's registration as the edge keeps it (sipedge/registrations.py) where PJSUA sends no REGISTER and raises
instead (tests/sip/pjsip_register_probe.py: the edge's SIP stack in a real PJSUA2 endpoint). A registrar PJSIP
cannot use as written reads `failed` with the way out, and is not asked again; a refusal that passes (PJSIP_EBUSY:
a REGISTER still in flight) reads `failed` and is asked again; a failure PJSUA both tells as an answer and raises
(a name that does not resolve: 502, then PJ_ERESOLVE) reads as that answer, which PJSUA retries itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from sipedge.registrations import ASKS_AGAIN, FIX_REGISTRAR, REASON_CHARS, Registration, Registrations
from tests.support.ports import free_port, free_port_pair

PROBE_SECONDS = 60


def test_a_failure_pjsua_raised_alone_reads_failed_with_its_status_and_what_comes_next() -> None:
    registrations = Registrations()
    registrations.gave_up("pbx", 171060, "Unsupported transport (PJSIP_EUNSUPTRANSPORT)", False)
    assert registrations.of("pbx") == Registration(
        "failed", None, f"Unsupported transport (PJSIP_EUNSUPTRANSPORT); {FIX_REGISTRAR}", 171060)
    registrations.gave_up("pbx", 171001, "x" * 200, True)  # a long reason is cut, what comes next kept
    reason = registrations.of("pbx").reason or ""
    assert len(reason) == REASON_CHARS and reason.endswith(f"; {ASKS_AGAIN}"), reason


def test_a_register_pjsua_refuses_to_send_is_asked_again_unless_the_registrar_cannot_be_used() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.sip.pjsip_register_probe", str(free_port(socket.SOCK_DGRAM)),
                          str(free_port_pair(4))], capture_output=True, text=True, timeout=PROBE_SECONDS, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probed = json.loads(run.stdout.strip().splitlines()[-1])
    refused = probed["refused"]
    assert refused["unparsed"] == {"state": "failed", "code": None, "status": 171039,
                                   "reason": f"Invalid URI (PJSIP_EINVALIDURI); {FIX_REGISTRAR}"}, probed
    assert refused["pending"] == {"state": "failed", "code": None, "status": 171001,
                                  "reason": f"Object is busy (PJSIP_EBUSY); {ASKS_AGAIN}"}, probed
    assert any("trunk pending: PJSUA sent no REGISTER" in line and "asking again in 30 s" in line
               for line in probed["log"]), probed["log"]
    assert refused["unresolved"]["state"] == "refused" and refused["unresolved"]["code"] == 502, probed
    assert probed["answered"]["state"] == "registered", probed  # the REGISTER in flight, answered, stands
