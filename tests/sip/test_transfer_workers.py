"""Transfers with several workers: the edge's one control API (its supervisor's) passes a transfer on
to the worker holding the session's call, over that worker's own control API on loopback, which takes
the control secret as the edge's does. A real dispatcher (the parrot), Kamailio in front of two real
PJSIP workers, SIPp as the trunk: a call held by the second worker is handed over by REFER through the
front, and a session no worker holds is 404."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.phone.conftest import wait_active_sessions, wait_for_idle_bot
from tests.sip.caller_cue import CuedCaller
from tests.sip.edge_keys import edge_keys
from tests.sip.loopback_rtp import can_capture
from tests.sip.test_calls import next_answered
from tests.sip.test_transfer import (
    DESK,
    EDGE_SECRET,
    INBOUND_USD,
    OUTBOUND_USD,
    Line,
    active_session,
    bridged_call,
    caller,
    ended_events,
    listed_end_reason,
    one,
    running_line,
    transfer_once_answered,
)
from tests.support.http_client import api_client

pytestmark = pytest.mark.slow  # a real dispatcher, Kamailio, two workers, SIPp, bot processes importing Pipecat


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    with running_line(tmp_path_factory, f"{{ inbound = {INBOUND_USD}, outbound = {OUTBOUND_USD} }}",
                      workers=2) as started:
        yield started


def worker_of(log: str, session_id: str) -> str:
    """The worker whose call answered `session_id`, as its log lines name it."""
    found = re.findall(rf"\[worker (\d+)\] .*answered \(session {session_id}\)", log)
    assert found, log[-6000:]
    return str(found[0])


async def test_a_call_held_by_the_second_worker_is_handed_over_by_refer(line: Line) -> None:
    async with api_client(base_url=line.dispatcher.base_url, timeout=60) as api:
        await wait_for_idle_bot(api)
        # The front sends the first call to the second worker (the least loaded, and of equals the one its
        # list holds first); the second call, which stays until the first is handed over, to the first worker,
        # which holds a call of its own while it says it holds none of the session handed over.
        call = caller(line.edge, "call_refer_accepted")
        session_id = await active_session(api)
        await wait_for_idle_bot(api)
        cued = CuedCaller()
        holding = cued.calling(line.edge, "call_until_cued")
        try:
            other = await active_session(api)
            answer = await transfer_once_answered(api, session_id, DESK)
            run = await call
            # Cued once answered (the edge's line of it): it then waits for the cue, never before.
            await next_answered(line.edge, 0, re.compile(rf"answered \(session ({other})\)"))
        finally:
            cued.cue()  # the holding caller hangs up
        held = await holding
        log = line.edge.log()
        assert answer.status_code == 200, f"{answer.text}\n{log[-6000:]}"
        assert answer.json()["carrier_status"] == "referred", answer.json()
        assert run.returncode == 0, f"{run.output}\n{log[-6000:]}"
        assert held.returncode == 0, f"{held.output}\n{log[-6000:]}"
        assert (worker_of(log, session_id), worker_of(log, other)) == ("1", "0")
        refer_to = [h for h in run.messages.splitlines() if h.lower().startswith("refer-to:")]
        assert refer_to and f"sip:{DESK}@127.0.0.1:{line.person_port}" in refer_to[0], refer_to
        assert re.search(r"\[worker 1\] .*handed to", log), log[-6000:]
        events = await ended_events(api, session_id)
        assert one(events, "transferred")["to"] == DESK
        assert await wait_active_sessions(api, 0) == 0


async def test_a_refused_refer_bridges_the_caller_to_the_person_called_through_the_front(line: Line) -> None:
    """The worker holding the call calls the person itself: its INVITE leaves through the front to the trunk's
    termination (the worker's only way there), and each side hears the other."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=line.dispatcher.base_url, timeout=60) as api:
        session_id = await bridged_call(api, line)
        assert await listed_end_reason(api, session_id) == "transferred"
        assert await wait_active_sessions(api, 0) == 0
    log = line.edge.log()
    assert re.search(rf"\[worker \d\] .*session {session_id} bridged to ", log), log[-6000:]
    assert "is not a trunk's termination" not in log
    # The person's SIPp got the INVITE from the front, which recorded its route.
    person = (line.edge.workdir / "callee_answers.messages").read_text(errors="replace")
    invite = person[person.index("INVITE sip:"):]
    assert re.search(rf"^Record-Route: <sip:127\.0\.0\.1:{line.edge.sip_port};lr", invite, re.MULTILINE), invite[:2000]


async def test_a_session_no_worker_holds_is_404_and_each_control_api_wants_the_secret(line: Line) -> None:
    body = {"to": DESK, "request_id": "r1"}
    async with httpx.AsyncClient(base_url=line.control, timeout=30) as control:
        key = edge_keys(EDGE_SECRET, line.control)["EDGE_CONTROL_KEY"]  # what the dispatcher presents this edge
        unknown = await control.post("/calls/no-such-session/transfer", json=body,
                                     headers={"Authorization": f"Bearer {key}"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "no_call", unknown.text
        stranger = await control.post("/calls/no-such-session/transfer", json=body)
        assert stranger.status_code == 401, stranger.text
    # Each worker's own control API, on loopback, answers nothing without the secret either.
    ports = set(re.findall(r"\[worker \d+\] .*control API on http://127\.0\.0\.1:(\d+)", line.edge.log()))
    assert len(ports) == 2, line.edge.log()[-6000:]
    for port in ports:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as worker:
            assert (await worker.post("/calls/no-such-session/transfer", json=body)).status_code == 401
            assert (await worker.get("/trunks", headers={"Authorization": "Bearer wrong"})).status_code == 401
