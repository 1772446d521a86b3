"""A SIP call handed to a person: a real local dispatcher (the parrot), `python -m sipedge` with a trunk that
both brings calls in and places them (its termination is a second SIPp, the person), and SIPp as the
trunk's caller. `POST /sessions/{id}/transfer` reaches the edge, which sends the caller's side a REFER:
taken (202, NOTIFYs 100 and 180 while the person rings, 200 once they answer), the session ends as
transferred; refused (603), the edge calls the person through the trunk and bridges the caller to them,
audio both ways, for PHONE_TRANSFER_TIME_LIMIT_SECONDS at most."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from sipedge.call_transfer import MIN_RING_SECONDS
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.edge_keys import KEY_SETTINGS, edge_keys
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.sipp import SippRun, run_callee, run_sipp
from tests.support.audio import Pcm, echo_similarity
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.ports import free_port, free_port_pair
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, two SIPps, a bot process importing Pipecat

EDGE_SECRET = "edge-control-secret-for-the-tests-0123456789"
DESK = "+14155550123"  # the person, on PHONE_TRANSFER_TARGETS
ABROAD = "+4420790000"  # on PHONE_TRANSFER_TARGETS too, but not among the trunk's `destinations`
ANSWERED_SECONDS = 60.0
TIME_LIMIT_SECONDS = 11  # a bridged call's longest: past test_transfer_workers.py's caller, who hangs up 10 s in
INBOUND_USD, OUTBOUND_USD = 0.0085, 0.013  # the trunk's prices a minute, billed by the second


@dataclass(frozen=True)
class Line:
    dispatcher: DispatcherProcess
    edge: EdgeProcess
    person_port: int
    control: str


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    with running_line(tmp_path_factory, f"{{ inbound = {INBOUND_USD}, outbound = {OUTBOUND_USD} }}") as started:
        yield started


@contextmanager
def running_line(tmp_path_factory: pytest.TempPathFactory, usd_per_minute: str, workers: int = 1) -> Iterator[Line]:
    """The dispatcher and the edge (of `workers`), its trunk priced `usd_per_minute` (the edge file's TOML value)."""
    control_port, person_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "SIP_EDGE_URL": f"http://127.0.0.1:{control_port}", "SIP_EDGE_SECRET": EDGE_SECRET,
           "PHONE_TRANSFER_TARGETS": f"{DESK},{ABROAD},pbx.example.com,127.0.0.1",  # the last: the trunk's
           "PHONE_TRANSFER_TIME_LIMIT_SECONDS": str(TIME_LIMIT_SECONDS)}
    settings = f'control_port = {control_port}\n{KEY_SETTINGS}'
    # ring_seconds: the least a bridged person is rung (MIN_RING_SECONDS); a REFER's outcome is waited for 4 + 8 s.
    trunk = (f'termination_uri = "sip:127.0.0.1:{person_port}"\nring_seconds = {MIN_RING_SECONDS:g}\n'
             'destinations = ["+1*"]\n'
             f"usd_per_minute = {usd_per_minute}\n"
             "billing_increment_seconds = 1")
    with (run_dispatcher(tmp_path_factory.mktemp("sip-transfer-dispatcher"), env) as dispatcher,
          run_edge(dispatcher, tmp_path_factory.mktemp("sip-transfer-edge"), settings=settings,
                   trunk_settings=trunk, env=edge_keys(EDGE_SECRET, f"http://127.0.0.1:{control_port}"),
                   workers=workers) as edge):
        yield Line(dispatcher, edge, person_port, f"http://127.0.0.1:{control_port}")


_seen: set[str] = set()  # the sessions earlier tests' calls had: one may still be listed active as it ends


async def active_session(api: httpx.AsyncClient) -> str:
    """The new call's session, once listed."""
    for _ in range(int(ANSWERED_SECONDS * 10)):
        listed = (await api.get("/sessions", params={"status": "active"})).json()["sessions"]
        new = [str(s["session_id"]) for s in listed if s["session_id"] not in _seen]
        if new:
            _seen.add(new[0])
            return new[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the call's session is not listed")


async def transfer_once_answered(api: httpx.AsyncClient, session_id: str, to: str) -> httpx.Response:
    """`POST /sessions/{id}/transfer`, asked again while the call is not answered yet: its session listed
    before its timeline has an event (404 not_found), its call not connected or answered (409 no_live_call)."""
    deadline = time.monotonic() + ANSWERED_SECONDS
    while True:
        answer = await api.post(f"/sessions/{session_id}/transfer", json={"to": to})
        if (answer.status_code, answer.json()["error"]["code"] if answer.status_code >= 400 else "") not in (
                (404, "not_found"), (409, "no_live_call")):
            return answer
        if time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.3)


async def events_of(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/sessions/{session_id}/timeline")).json()["events"])


async def ended_events(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    for _ in range(600):
        events = await events_of(api, session_id)
        if any(e["event"] == "ended" for e in events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"the session did not end: {[e['event'] for e in events]}")


async def listed_end_reason(api: httpx.AsyncClient, session_id: str) -> str | None:
    """The session's `end_reason` as `GET /sessions` lists it once ended."""
    for _ in range(300):
        listed = (await api.get("/sessions", params={"status": "ended"})).json()["sessions"]
        mine = [s for s in listed if s["session_id"] == session_id]
        if mine:
            reason = mine[0].get("end_reason")
            return str(reason) if reason is not None else None
        await asyncio.sleep(0.1)
    raise AssertionError(f"session {session_id} is not listed ended")


async def bridged_line(api: httpx.AsyncClient, session_id: str, edge: EdgeProcess) -> dict[str, Any]:
    """The session's telephony line once the bridged leg's end is priced (the edge tells it after the session ended)."""
    telephony: dict[str, Any] = {}
    for _ in range(200):
        telephony = (await api.get(f"/sessions/{session_id}")).json()["cost"].get("telephony") or {}
        if "bridged" in telephony and not telephony["bridged"].get("live"):
            return telephony
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ended bridged leg on the session's line: {telephony}\n{edge.log()}")


def one(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [e for e in events if e["event"] == name]
    assert found, [e["event"] for e in events]
    return found[0]


def caller(edge: EdgeProcess, scenario: str, media_port: int | None = None) -> asyncio.Task[SippRun]:
    return asyncio.create_task(asyncio.to_thread(run_sipp, scenario, NUMBER, edge.sip_port, edge.workdir,
                                                 media_port=media_port))


async def test_a_refer_the_caller_side_takes_ends_the_session_as_transferred(line: Line) -> None:
    async with api_client(base_url=line.dispatcher.base_url, timeout=60) as api:
        await wait_for_idle_bot(api)
        before = len(line.edge.log())
        call = caller(line.edge, "call_refer_accepted")
        session_id = await active_session(api)
        off_list = await transfer_once_answered(api, session_id, "+14155550999")
        assert off_list.status_code == 403 and off_list.json()["error"]["code"] == "target_not_allowed", off_list.text
        # Listed, but a number the trunk does not call (its `destinations`): refused before any REFER; as a SIP URI
        # at the trunk's termination host it is a call the trunk places just as well, refused alike.
        for abroad in (ABROAD, f"sip:{ABROAD}@127.0.0.1:{line.person_port}"):
            unrouted = await transfer_once_answered(api, session_id, abroad)
            assert unrouted.status_code == 409 and unrouted.json()["error"]["code"] == "target_not_routed", (
                unrouted.text)
        answer = await transfer_once_answered(api, session_id, DESK)
        run = await call
        assert answer.status_code == 200, f"{answer.text}\n{line.edge.log()}"
        assert (answer.json()["status"], answer.json()["carrier"], answer.json()["carrier_status"]) == (
            "transferred", "sip", "referred"), answer.json()
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"
        refer_to = [h for h in run.messages.splitlines() if h.lower().startswith("refer-to:")]
        assert refer_to and f"sip:{DESK}@127.0.0.1:{line.person_port}" in refer_to[0], refer_to
        assert run.messages.count("\nREFER ") == 1  # the one REFER; the refused targets sent none
        # The 180 NOTIFY left the person ringing for 5 s, past the trunk's ring_seconds: the edge waited for the
        # final one and never called the person itself (a second call to them).
        edge_log = line.edge.log()[before:]
        assert "handed to" in edge_log and "bridged" not in edge_log and "refused" not in edge_log, edge_log
        events = await ended_events(api, session_id)
        assert one(events, "transferred")["to"] == DESK
        assert await listed_end_reason(api, session_id) == "transferred"
        sip = one(events, "sip_ended")
        assert (sip["by"], sip["how"], sip["status"]) == ("edge", "referred", 200), sip
        assert await wait_active_sessions(api, 0) == 0


async def bridged_call(api: httpx.AsyncClient, line: Line, scenario: str = "call_refer_refused") -> str:
    """A call whose REFER the caller's side refuses, bridged to the person (audio both ways) until the caller
    hangs up 10 s in (`scenario` call_refer_refused; call_refer_refused_stays: until the edge hangs both legs up):
    its session."""
    await wait_for_idle_bot(api)
    caller_media, person_media = free_port_pair(2), free_port_pair(2)
    to_caller, to_person = LoopbackRtp(caller_media), LoopbackRtp(person_media)
    try:
        person = asyncio.create_task(asyncio.to_thread(run_callee, "callee_answers", line.person_port,
                                                       line.edge.workdir, media_port=person_media))
        call = caller(line.edge, scenario, caller_media)
        session_id = await active_session(api)
        answer = await transfer_once_answered(api, session_id, DESK)
        run, far = await call, await person
    finally:
        to_caller.stop()
        to_person.stop()
    assert answer.status_code == 200, f"{answer.text}\n{line.edge.log()}"
    assert answer.json()["carrier_status"] == "bridged", answer.json()
    assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"
    assert far.returncode == 0, f"{far.output}\n{line.edge.log()}"  # answered, then the edge's BYE ended it
    speech = voiced(Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000))
    for heard, who in ((to_person, "the person"), (to_caller, "the caller")):
        similarity = echo_similarity(speech, np.frombuffer(heard.pcm("ulaw"), dtype=np.int16), 8000)
        assert similarity > 0.7, f"{who} heard the other at {similarity:.2f}\n{line.edge.log()}"
    return session_id


async def test_a_refused_refer_bridges_the_caller_to_the_person_through_the_trunk_until_its_time_limit(
        line: Line) -> None:
    """Bridged (audio both ways), priced, and hung up by the edge, both legs, once the time limit is up (the caller
    stays on). A caller's own hang-up ending the bridged call: test_transfer_workers.py's bridged call."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=line.dispatcher.base_url, timeout=60) as api:
        # Each leg got the edge's BYE (neither scenario hangs up on its own), the time limit's.
        session_id = await bridged_call(api, line, "call_refer_refused_stays")
        assert f"time limit ({TIME_LIMIT_SECONDS} s) is up" in line.edge.log(), line.edge.log()
        events = await ended_events(api, session_id)
        assert await listed_end_reason(api, session_id) == "transferred"
        sip = one(events, "sip_ended")
        assert (sip["by"], sip["how"]) == ("edge", "bridged"), sip
        assert await wait_active_sessions(api, 0) == 0
        # The person's leg, from their answer to the time limit's hang-up that ended it, is the session's too.
        telephony = await bridged_line(api, session_id, line.edge)
        legs = {e.get("leg"): e["at"] for e in await events_of(api, session_id) if e["event"] == "bridged_leg"}
        # Priced at most the time limit: the edge's hang-up at the limit is noted a moment after it (later at load).
        leg_seconds = min(legs["ended"] - legs["answered"], TIME_LIMIT_SECONDS)
        assert telephony["bridged"]["seconds"] == pytest.approx(leg_seconds, abs=0.01)
        assert telephony["bridged"]["seconds"] > 2.0, telephony  # the person answered and spoke
        assert (telephony["bridged"]["direction"], telephony["bridged"]["usd_per_minute"]) == ("outbound", OUTBOUND_USD)
        own, leg = telephony["usd"], telephony["bridged"]["usd"]
        assert leg == pytest.approx(math.ceil(telephony["bridged"]["seconds"]) / 60 * OUTBOUND_USD, abs=1e-6)
        cost = (await api.get(f"/sessions/{session_id}")).json()["cost"]
        # Each of the three is rounded to the micro-dollar on its own: their sum may be off by 1.5e-6.
        assert cost["telephony_usd"] == pytest.approx(own + leg, abs=2e-6), cost


async def test_refers_refused_failing_or_unheard_each_leave_the_call_with_its_bot(line: Line) -> None:
    """One call, three REFERs in turn (call_refer_refused_fails_unheard.xml), each leaving the call with its bot: one
    to a SIP URI refused (603: nothing to bridge to), one taken whose call to the person fails (486: the trunk tried
    the person, so no second call to them), and one taken whose outcome never comes (unknown, never sent again)."""
    async with api_client(base_url=line.dispatcher.base_url, timeout=60) as api:
        await wait_for_idle_bot(api)
        before = len(line.edge.log())
        cued = CuedCaller()
        call = cued.calling(line.edge, "call_refer_refused_fails_unheard")
        try:
            session_id = await active_session(api)
            refused = await transfer_once_answered(api, session_id, "sip:desk@pbx.example.com")
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "refer_refused", refused.text
            assert "603" in refused.json()["error"]["message"]
            session = (await api.get(f"/sessions/{session_id}")).json()
            assert session["status"] == "joined", f"refused: still the bot's: {session}"

            failed = await transfer_once_answered(api, session_id, DESK)  # 202, NOTIFY 100, then NOTIFY 486
            assert failed.status_code == 409 and failed.json()["error"]["code"] == "refer_failed", failed.text
            assert "486" in failed.json()["error"]["message"]
            session = (await api.get(f"/sessions/{session_id}")).json()
            assert session["status"] == "joined", f"failed: still the bot's: {session}"

            unheard = await transfer_once_answered(api, session_id, DESK)  # 202, NOTIFY 100, then nothing
            assert unheard.status_code == 504, unheard.text
            error = unheard.json()["error"]
            assert (error["code"], error["outcome"]) == ("transfer_outcome_unknown", "unknown"), unheard.text
            assert "may yet reach" in error["message"], unheard.text  # the edge's own words
            again = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK})
            assert again.status_code == 409 and again.json()["error"]["code"] == "already_transferring", again.text
        finally:
            cued.cue()  # the caller hangs up
        run = await call
        assert run.returncode == 0, f"{run.output}\n{line.edge.log()}"  # its own BYE: the edge kept the call
        assert run.messages.count("\nREFER ") == 3, "one REFER each, the unknown one never sent again"
        assert "bridged" not in line.edge.log()[before:], "no call of the edge's own to the person"
        events = await ended_events(api, session_id)
        assert not [e for e in events if e["event"] == "transferred"]
        assert await listed_end_reason(api, session_id) != "transferred"
        assert one(events, "sip_ended")["how"] == "bye"


async def test_the_edge_hands_calls_over_only_for_the_control_secret(line: Line, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=line.control, timeout=10) as edge:
        body = {"to": DESK, "request_id": "r1"}
        assert (await edge.post("/calls/s1/transfer", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * len(EDGE_SECRET)}
        assert (await edge.post("/calls/s1/transfer", json=body, headers=wrong)).status_code == 401
        right = {"Authorization": f"Bearer {edge_keys(EDGE_SECRET, line.control)['EDGE_CONTROL_KEY']}"}
        unknown = await edge.post("/calls/s1/transfer", json=body, headers=right)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "no_call", unknown.text
        header = await edge.post("/calls/s1/transfer", headers=right,
                                 json={"to": "sip:a@b.example.com>\r\nX-Evil: 1", "request_id": "r2"})
        assert header.status_code == 422, header.text
