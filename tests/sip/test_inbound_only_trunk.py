"""A call out named through a trunk that only takes calls in: every stack's edge has its control API now
(the dispatcher's status and transfers ask it), so a dispatcher of an inbound-only stack holds SIP_EDGE_URL
and `POST /calls` reaches an edge that places nothing. The edge's own control API (PJSIP not started) on a
real port, the dispatcher's app in front of it: refused 409 naming the trunk's termination URI, never a
404 that calls the trunk unknown or a 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.trunk_calls import TrunkInfo
from dispatcher.settings import Settings
from sipedge import control
from sipedge.config import load
from sipedge.edge import Edge
from tests.dispatcher.phone.test_trunk_calls import listed
from tests.sip.edge_keys import edge_keys
from tests.sip.test_outbound_parts import config
from tests.support.ports import free_port

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE = """
control_port = 5080
control_secret_env = "EDGE_SECRET"

[[trunk]]
name = "pbx"
sources = ["127.0.0.1/32"]
numbers = { "+14155550199" = "" }
"""
FAR = """
[[trunk]]
name = "far"
termination_uri = "sip:127.0.0.1:5099"
callers = ["local"]
caller_ids = ["+14155550199"]
"""
CALL = {"to": "+14155550100", "from": "+14155550199", "trunk": "pbx"}


async def edge_at(tmp_path: Path, text: str) -> AsyncIterator[str]:
    port = free_port()
    key = edge_keys(SECRET, f"http://127.0.0.1:{port}")["EDGE_CONTROL_KEY"]  # the one the dispatcher presents it
    edge = Edge(load(config(tmp_path, text, EDGE_SECRET=key)), asyncio.get_running_loop())
    edge.stack.started.set()  # PJSIP itself is not started: no call could go out
    api = control.Control(edge, key)
    server = TestServer(api.app(), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await api.close()
        await edge.link.close()


@pytest.fixture(params=["inbound-only", "both-ways"])
async def edge(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The edge's control API: its URL, and the trunks it says place calls."""
    both = request.param == "both-ways"
    async for url in edge_at(tmp_path, EDGE + (FAR if both else "")):
        yield url, "far" if both else "none yet"


async def test_a_call_out_through_a_trunk_that_takes_calls_in_only_is_409_naming_its_termination_uri(
        edge: tuple[str, str]) -> None:
    url, placing = edge
    app = create_app(Settings(), env={"SIP_EDGE_URL": url, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            answers = [await api.post("/calls", json=CALL) for _ in range(2)]  # the edge's list, read and kept
            unknown = await api.post("/calls", json={**CALL, "trunk": "nowhere"})
    finally:
        await app.state.voicefleet.aclose()
    for answer in answers:
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["code"] == "trunk_inbound_only"
        assert "'pbx' takes calls in only" in error["message"] and "terminationUri" in error["message"]
        assert f"The trunks that place calls: {placing}" in error["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_trunk", unknown.text


async def test_the_edge_refuses_it_too_when_the_dispatcher_s_list_said_otherwise(edge: tuple[str, str]) -> None:
    """The dispatcher's list of trunks is kept a while (or read from an older edge): the edge's own 409 reaches
    the caller as such, its code kept."""
    url, _ = edge
    app = create_app(Settings(), env={"SIP_EDGE_URL": url, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    calls = app.state.voicefleet.trunk_calls
    listed(calls, TrunkInfo("pbx", 50.0))  # as if it placed calls when the list was read
    try:
        with pytest.raises(ApiError) as refused:
            await calls.hand_over({"session_id": "s1", "stream_path": "/ws/exotel/t", "to": CALL["to"],
                                   "from": CALL["from"], "trunk": "pbx", "caller": "local"})
    finally:
        await app.state.voicefleet.aclose()
    assert (refused.value.status, refused.value.code) == (409, "trunk_inbound_only")
    assert "terminationUri" in refused.value.message
