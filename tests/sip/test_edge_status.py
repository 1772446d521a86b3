"""The edge's `GET /status` on a real `python -m sipedge` (docs/sip.md, "Is the edge up?"): its calls and
slots, each trunk's registration as its registrar answered (SIPp's registrar, refusing the edge's password),
the INVITEs it refused over the last minute, and nothing without the control secret."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sipedge.front_config import PIKE_REQUESTS_PER_UNIT, worker_capacity
from sipedge.registrations import FIX_REGISTRAR
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.raw_sip import RawSip, status_of
from tests.sip.sipp import HERE, SIPP_SECONDS
from tests.support.ports import free_port
from tests.support.processes import terminate

SECRET = "edge-control-secret-for-the-tests-0123456789"
REGISTERED_NUMBER = "+14155550198"
WAIT_SECONDS = 60.0


def _status(control: str, secret: str) -> tuple[int, dict[str, Any]]:
    """The edge's answer; its control API may open just after its "ready" line (a front's does), so a refused
    connection is tried again for a while."""
    request = urllib.request.Request(f"{control}/status", headers={"Authorization": f"Bearer {secret}"})
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())
        except urllib.error.URLError as failed:
            if not isinstance(failed.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _answered(control: str, trunk: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge's status once `trunk`'s registration is no longer `registering` and its SIP is up (or
    WAIT_SECONDS passed), and that trunk's part of it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        code, body = _status(control, SECRET)
        assert code == 200, body
        state = next(t for t in body["trunks"] if t["name"] == trunk)
        if (state["registration"] != "registering" and body["ready"]) or time.monotonic() > deadline:
            return body, state
        time.sleep(0.2)



def invite_refused_as_stranger(sip_port: int) -> None:
    """An INVITE from 127.0.0.2, a source no trunk allows, answered 403."""
    stranger = RawSip("127.0.0.2", sip_port)
    try:
        stranger.invite(REGISTERED_NUMBER)
        answer = stranger.final_answer(SIPP_SECONDS)
        assert answer is not None and status_of(answer) == 403, answer
    finally:
        stranger.close()

def test_the_edges_status_shows_its_slots_a_refused_registration_and_its_refusals(tmp_path: Path) -> None:
    registrar_port, control_port = free_port(socket.SOCK_DGRAM), free_port()
    registrar = subprocess.Popen(  # refuses the edge's wrong password with 403 (registrar.xml)
        ["sipp", "-sf", str(HERE / "registrar.xml"), "-i", "127.0.0.1", "-p", str(registrar_port), "-m", "1",
         "-nostdin", "-timeout", str(SIPP_SECONDS)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = f'control_port = {control_port}\ncontrol_secret_env = "EDGE_SECRET"'
    pbx = (f'[[trunk]]\nname = "pbx"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{REGISTERED_NUMBER}" = "" }}\n'
           f'registrar = "sip:127.0.0.1:{registrar_port}"\ndigest_username = "edge"\n'
           'digest_password_env = "PBX_PASSWORD"\n')
    control = f"http://127.0.0.1:{control_port}"
    try:
        with run_edge("http://127.0.0.1:9", tmp_path, settings=settings, trunks=pbx,
                      env={"EDGE_SECRET": SECRET, "PBX_PASSWORD": "not-the-password"}) as edge:
            assert _status(control, "another-secret")[0] == 401
            invite_refused_as_stranger(edge.sip_port)  # no trunk allows this source: refused 403
            body, pbx_state = _answered(control, "pbx")
    finally:
        terminate(registrar)
    assert pbx_state == {"name": "pbx", "registration": "refused", "code": 403, "reason": "Forbidden"}, body
    assert {"name": "loopback", "registration": "not_registering"} in body["trunks"]
    assert body["ready"] is True and body["version"].startswith("sipedge-")
    assert body["calls"]["in_progress"] == 0 and body["calls"]["free"] == body["calls"]["total"] > 0, body
    assert body["refused_last_minute"] == 1, body
    assert time.time() - WAIT_SECONDS - 60 < body["up_since"] <= time.time(), body
    assert SECRET not in json.dumps(body) and "+1415" not in json.dumps(body)


@pytest.fixture(scope="module")
def fronted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, str]]:
    """Two workers behind Kamailio, for the module's tests of an edge with workers (each its own sources):
    (the edge, its control API's URL)."""
    control_port = free_port()
    settings = f'control_port = {control_port}\ncontrol_secret_env = "EDGE_SECRET"'
    with run_edge("http://127.0.0.1:9", tmp_path_factory.mktemp("sip-status-front"), settings=settings,
                  env={"EDGE_SECRET": SECRET}, workers=2) as edge:
        yield edge, f"http://127.0.0.1:{control_port}"


def test_an_edge_with_workers_answers_for_all_of_them_through_its_front(fronted: tuple[EdgeProcess, str]) -> None:
    code, body = _status(fronted[1], SECRET)
    assert code == 200, body
    assert body["workers"] == {"total": 2, "answering": 2} and body["ready"] is True, body
    assert body["calls"]["in_progress"] == 0
    assert body["calls"]["free"] == body["calls"]["total"] == 2 * worker_capacity(), body
    assert body["trunks"] == [{"name": "loopback", "registration": "not_registering"}], body


def test_a_registration_pjsua_sends_nothing_for_reads_failed_with_its_reason(tmp_path: Path) -> None:
    """A registrar at an IPv6 address passes the edge's file (a UDP URI), yet the edge opens UDP over IPv4 alone:
    PJSUA finds no Contact for it and sends no REGISTER, ever, reporting nothing. The status says `failed`
    with PJSUA's status and reason and the way out (the file to fix: the edge does not ask again), not
    `registering` for good."""
    control_port = free_port()
    settings = f'control_port = {control_port}\ncontrol_secret_env = "EDGE_SECRET"'
    pbx = (f'[[trunk]]\nname = "pbx6"\nsources = ["127.0.0.1/32"]\nnumbers = {{ "{REGISTERED_NUMBER}" = "" }}\n'
           'registrar = "sip:[::1]:5060"\ndigest_username = "edge"\ndigest_password_env = "PBX_PASSWORD"\n')
    control = f"http://127.0.0.1:{control_port}"
    with run_edge("http://127.0.0.1:9", tmp_path, settings=settings, trunks=pbx,
                  env={"EDGE_SECRET": SECRET, "PBX_PASSWORD": "a-password"}):
        body, state = _answered(control, "pbx6")
    assert state["registration"] == "failed", body
    assert state["status"] == 171060 and "PJSIP_EUNSUPTRANSPORT" in state["reason"], state
    assert state["reason"].endswith(FIX_REGISTRAR), state  # the edge does not ask again: the file is to fix


def test_an_edge_with_workers_counts_what_its_front_refused_itself(fronted: tuple[EdgeProcess, str]) -> None:
    """Kamailio answers a source no trunk allows 403 itself, and drops a flooding source's requests (pike): no
    worker sees them, yet the edge's `refused_last_minute` counts each 403 and each flooding source once, and
    its log says each once (later ones from that source only counted)."""
    edge, control = fronted
    assert _status(control, SECRET)[1]["refused_last_minute"] == 0
    for _ in range(2):
        invite_refused_as_stranger(edge.sip_port)
    flood = RawSip("127.0.0.3", edge.sip_port)  # past pike's density: dropped, counted once, not per packet
    try:
        for _ in range(3 * PIKE_REQUESTS_PER_UNIT):
            flood.options(REGISTERED_NUMBER)
    finally:
        flood.close()
    deadline = time.monotonic() + WAIT_SECONDS
    while (body := _status(control, SECRET)[1])["refused_last_minute"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    log = edge.log()
    assert body["refused_last_minute"] == 3, body
    assert log.count("refused by the front (403): no trunk allows this source") == 1, log[-3000:]
    assert log.count("127.0.0.3 refused by the front (dropped)") == 1, log[-3000:]
    assert "sipedge-front-refused" not in log  # Kamailio's own lines are counted, not passed on one by one
