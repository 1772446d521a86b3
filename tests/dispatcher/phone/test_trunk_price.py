"""A SIP call's trunk price is the SIP edge's word alone: `POST /start`'s `sip_trunk` is taken only with
the edge's own credential (derived from `SIP_EDGE_SECRET`) in `X-Voicefleet-Edge-Secret` (the number's
API key it carries is a client's key too), refused `403 sip_edge_only` from anyone else, and then rides
in the call's signed token; an outbound call's price is read from the edge's own list of trunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from dispatcher.api.edge_line import edge_vouches
from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.observability.sip_end import sip_end_of
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.trunk_calls import _trunk_info
from dispatcher.settings import Settings
from dispatcher.usage.trunk_line import TrunkLine

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE = {"X-Voicefleet-Edge-Secret": EdgeSecret(SECRET).edge_credential("http://10.0.0.5:5080")}
PRICED: dict[str, Any] = {"transport": "exotel", "body": {"call_id": "1@trunk"},
                          "sip_trunk": {"trunk": "twilio", "usd_per_minute": 0.0085}}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), env={"SIP_EDGE_SECRET": SECRET}, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.state.voicefleet.aclose()


async def test_the_edges_start_with_its_secret_puts_the_trunk_and_price_in_the_calls_token(
        api: httpx.AsyncClient) -> None:
    answer = await api.post("/start", json=PRICED, headers=EDGE)
    assert answer.status_code == 201, answer.text
    grant = api.app.state.voicefleet.phone.tokens.check(answer.json()["token"], "exotel")  # type: ignore[attr-defined]
    assert grant.line == TrunkLine("twilio", "inbound", 0.0085, 60)


@pytest.mark.parametrize("headers", [{}, {"X-Voicefleet-Edge-Secret": "x" * 44},
                                     {"Authorization": EDGE["X-Voicefleet-Edge-Secret"]},
                                     {"X-Voicefleet-Edge-Secret": EdgeSecret(SECRET).control_credential("http://e:1")}])
async def test_a_price_without_the_edges_secret_is_refused_whoever_sends_it(
        api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    answer = await api.post("/start", json=PRICED, headers=headers)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "sip_edge_only" and "leave it out" in error["message"]


async def test_an_older_edge_s_shared_secret_is_refused_naming_the_way_out(api: httpx.AsyncClient) -> None:
    answer = await api.post("/start", json=PRICED, headers={"X-Voicefleet-Edge-Secret": SECRET})
    assert answer.status_code == 403, answer.text
    assert "no SIP edge holds any longer" in answer.json()["error"]["message"]


async def test_a_price_on_a_start_that_is_no_phone_call_is_422(api: httpx.AsyncClient) -> None:
    answer = await api.post("/start", json={**PRICED, "transport": "webrtc"},
                            headers=EDGE)
    assert answer.status_code == 422, answer.text
    assert "sip_trunk" in answer.json()["error"]["message"]


async def test_a_dispatcher_without_the_edges_secret_refuses_every_price_naming_the_setting() -> None:
    app = create_app(Settings(), env={}, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        answer = await api.post("/start", json=PRICED, headers=EDGE)
        plain = await api.post("/start", json={k: v for k, v in PRICED.items() if k != "sip_trunk"})
        # A call's count is refused alike, by the same check, naming the same way forward.
        web = await api.post("/start", json={})
        counted = await api.post(f"/sessions/{web.json()['session_id']}/sip_end", headers=EDGE,
                                 json={"by": "caller", "how": "bye", "answered_seconds": 42.5})
        await api.delete(f"/sessions/{web.json()['session_id']}")
    await app.state.voicefleet.aclose()
    assert plain.status_code == 201, plain.text  # an unpriced call is as it was
    for refused in (answer, counted):
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "sip_edge_only"), refused.text
        assert "no SIP_EDGE_SECRET to know it by: set it" in refused.text
        assert "docs/sip.md#edge-credentials" in refused.text


@pytest.mark.parametrize("asked", [{"trunk": "twilio", "usd_per_minute": -1}, {"trunk": "twilio"},
                                   {"trunk": "twilio", "usd_per_minute": 0.01, "increment_seconds": 0},
                                   {"trunk": "twilio", "usd_per_minute": 0.01, "other": 1}])
async def test_a_malformed_price_is_422(api: httpx.AsyncClient, asked: dict[str, Any]) -> None:
    answer = await api.post("/start", json={**PRICED, "sip_trunk": asked}, headers=EDGE)
    assert answer.status_code == 422, answer.text


def test_an_outbound_trunks_price_comes_from_the_edges_list() -> None:
    assert _trunk_info({"name": "twilio", "cps": 1, "usd_per_minute": 0.013, "increment_seconds": 6}).line == \
        TrunkLine("twilio", "outbound", 0.013, 6)
    assert _trunk_info({"name": "pbx", "cps": 1}).line is None
    assert _trunk_info({"name": "odd", "cps": 1, "usd_per_minute": "free"}).line is None


async def test_the_edges_count_of_a_calls_answered_seconds_is_taken_with_its_credential_alone(
        api: httpx.AsyncClient) -> None:
    """The number's key is a client's too: a client's count (which would shorten what its calls cost) is refused,
    naming the way out; the edge's is kept on the timeline, which prices the call (test_telephony_cost.py)."""
    started = await api.post("/start", json={})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    told = {"by": "caller", "how": "bye", "answered_seconds": 42.5}
    for headers in ({}, {"X-Voicefleet-Edge-Secret": "x" * 44}):
        refused = await api.post(f"/sessions/{session_id}/sip_end", json=told, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "sip_edge_only" and "leave it out" in refused.text
    taken = await api.post(f"/sessions/{session_id}/sip_end", json=told, headers=EDGE)
    assert taken.status_code == 204, taken.text
    await api.app.state.voicefleet.sessions.timeline.settled()  # type: ignore[attr-defined]
    events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
    assert [e["answered_seconds"] for e in events if e["event"] == "sip_ended"] == [42.5]
    await api.delete(f"/sessions/{session_id}")


async def test_a_count_another_region_relayed_is_left_out_not_refused() -> None:
    """A relay forwards no edge credential: the edge's other words on the call's end still land there, and the
    count, which that region cannot check, is left out (the call is priced on the dispatcher's own view)."""
    relayed = Request({"type": "http", "headers": [], "state": {"relayed_by": "eu"}})
    direct = Request({"type": "http", "headers": [], "state": {}})
    state = SimpleNamespace(sip_edge=EdgeSecret(SECRET), trunk_calls=None)
    assert await edge_vouches(relayed, state, "`answered_seconds`", "s") is False  # type: ignore[arg-type]
    with pytest.raises(ApiError) as refused:
        await edge_vouches(direct, state, "`answered_seconds`", "s")  # type: ignore[arg-type]
    assert refused.value.status == 403 and refused.value.code == "sip_edge_only"


async def test_an_end_told_without_the_edges_count_is_kept_once_and_never_hides_the_edges(
        api: httpx.AsyncClient) -> None:
    """A client holding the number's key may tell the call's end itself: the first such is kept (the edge's, told
    later with its count, is kept too and is what the report carries), later ones are not, so a client cannot fill
    the timeline's last events (the cost's trunk line among them) with its own."""
    started = await api.post("/start", json={})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    for reason in ("first", "second", "third"):
        told = await api.post(f"/sessions/{session_id}/sip_end", json={"by": "edge", "how": "bye", "reason": reason})
        assert told.status_code == 204, told.text
    counted = {"by": "caller", "how": "bye", "answered_seconds": 42}  # a whole number of seconds is a float too
    assert (await api.post(f"/sessions/{session_id}/sip_end", json=counted, headers=EDGE)).status_code == 204
    await api.app.state.voicefleet.sessions.timeline.settled()  # type: ignore[attr-defined]
    events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
    assert [(e.get("reason"), e.get("answered_seconds")) for e in events if e["event"] == "sip_ended"] == [
        ("first", None), (None, 42.0)]
    report = await api.get(f"/sessions/{session_id}")
    assert report.status_code == 200, report.text
    await api.delete(f"/sessions/{session_id}")


@pytest.mark.parametrize("count", [True, "42.5", float("inf"), -1, 7 * 24 * 3600 + 1])
async def test_a_count_that_is_no_plain_number_of_seconds_is_422(api: httpx.AsyncClient, count: object) -> None:
    started = await api.post("/start", json={})
    session_id = started.json()["session_id"]
    told = await api.post(f"/sessions/{session_id}/sip_end", headers={**EDGE, "Content-Type": "application/json"},
                          content=json.dumps({"by": "caller", "how": "bye", "answered_seconds": count}))
    assert told.status_code == 422, told.text
    await api.delete(f"/sessions/{session_id}")


def test_the_calls_end_its_report_carries_is_the_edges_counted_one_before_an_earlier_one() -> None:
    """A client's own end, told first without a count, says nothing of how the edge saw the call end: the webhook
    and the report carry the edge's (the first told with its count), else the first told."""
    bare = {"event": "sip_ended", "at": 1.0, "by": "edge", "how": "bye", "reason": "a client's words"}
    counted = {"event": "sip_ended", "at": 2.0, "by": "caller", "how": "bye", "answered_seconds": 12.0}
    assert sip_end_of([bare, counted]) == {"by": "caller", "how": "bye"}
    assert sip_end_of([bare]) == {"by": "edge", "how": "bye", "reason": "a client's words"}
    assert sip_end_of([{"event": "ended", "at": 3.0}]) is None
