"""Review of "the edge refuses a registrar over a transport it does not open" (sipedge/config.py
_check_transports): the check reads `;transport=` only. The edge opens a UDP transport on its IPv4
sip_address (sipedge/stack.py), and a registrar named by an IPv6 literal (`sip:[2001:db8::1]`, a PBX on
an IPv6-only network) needs a UDP6 one: PJSUA's pjsua_acc_get_uac_addr sets PJSIP_TRANSPORT_IPV6 for a host
with a ':' and finds no local address (PJSIP_EUNSUPTRANSPORT, pjsua_acc.c 2.15.1 ~line 3555), so it logs
"Unable to generate suitable Contact header" and never calls onRegState nor tries again: GET /status says
`registering` for ever, which docs/sip.md reads as a registrar that has not answered yet. The same failure
the deleted test_edge_status_registrar_unreachable.py showed for `;transport=tcp`, by another door.
Either fix passes: the edge refusing such a registrar at start, naming it, or its status saying it failed."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sip.conftest import run_edge
from tests.sip.test_edge_status import SECRET, _status
from tests.support.ports import free_port

# Nothing is ever sent: a fix that notices reports at once. Past the edge's start, a few seconds is plenty.
WAIT_SECONDS = 12.0


def test_a_registrar_the_edge_cannot_reach_over_its_transports_is_not_registering_for_ever(tmp_path: Path) -> None:
    control_port = free_port()
    settings = f'control_port = {control_port}\ncontrol_secret_env = "EDGE_SECRET"'
    pbx = ('[[trunk]]\nname = "pbx"\nsources = ["127.0.0.1/32"]\nnumbers = { "+14155550198" = "" }\n'
           'registrar = "sip:[::1]:5999"\ndigest_username = "edge"\ndigest_password_env = "PBX_PASSWORD"\n')
    try:
        state = _registration(tmp_path, settings, pbx, control_port)
    except RuntimeError as refused:  # the edge did not come up: its log must name the registrar
        assert "registrar" in str(refused), refused
        return
    assert state["registration"] == "failed" and "transport" in str(state["reason"]).lower(), state


def _registration(tmp_path: Path, settings: str, pbx: str, control_port: int) -> dict[str, object]:
    with run_edge("http://127.0.0.1:9", tmp_path, settings=settings, trunks=pbx,
                  env={"EDGE_SECRET": SECRET, "PBX_PASSWORD": "not-a-real-password"}):
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            code, body = _status(f"http://127.0.0.1:{control_port}", SECRET)
            assert code == 200, body
            state = next(trunk for trunk in body["trunks"] if trunk["name"] == "pbx")
            if state["registration"] != "registering" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return state
