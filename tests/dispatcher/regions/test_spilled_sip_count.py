"""A SIP call that spills from the region its edge reached (eu, full) to another (us) keeps the edge's count of
its minutes: eu records the edge that sent the start as the session's, checks that edge's credential on the
call's end as it would for a call of its own, and relays the count with its signed word (`EDGE_VOUCHED`), the
credential itself never crossing; so do its transfer's reports (a bridged leg, a warm step). A client (the
number's key), another eu edge, or a forged word is refused or not believed, at eu and at us. Both regions are
dispatcher apps in this process: us on a loopback port (eu's relay reaches it there), eu called in-process, its
poll of us stood in for and its room taken."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.api import edge_holder
from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import HEADER, EdgeSecret
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Capacity
from dispatcher.regions.signing import (
    EDGE_VOUCHED,
    NONCE,
    RELAYED_BY,
    SENDER,
    SIGNATURE,
    TIME,
    VERSION,
    RegionSigner,
    _mac,
)
from dispatcher.sessions.ids import region_tag_of
from dispatcher.store.unavailable import StoreUnavailable
from dispatcher.usage.telephony_cost import BRIDGED_LEG
from tests.dispatcher.conftest import API_KEY
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port

REGION_SECRET = "spilled-count-region-secret-0123456789"
EDGE_SECRETS = {"eu": "eu-edge-secret-for-the-spilled-count-0123", "us": "us-edge-secret-for-the-spilled-count-0123"}
HOLDER, OTHER = "http://10.0.0.5:5080", "http://10.0.0.6:5080"  # eu's two listed edges (nothing listens)
KEY = {"Authorization": f"Bearer {API_KEY}"}
START = {"transport": "exotel", "body": {"call_id": "1@trunk"},
         "sip_trunk": {"trunk": "twilio", "usd_per_minute": 0.0085}}
COUNTED = {"by": "caller", "how": "bye", "answered_seconds": 78.214}


def edge(url: str, region: str = "eu") -> dict[str, str]:
    """What an edge of `region` sends: the number's key and its own credential."""
    return {**KEY, HEADER: EdgeSecret(EDGE_SECRETS[region]).edge_credential(url)}


class Heard:
    """The headers of each request that reaches us, as it reached it."""

    def __init__(self, app: ASGIApp, seen: list[dict[str, str]]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]} | {":path": scope["path"]})
        await self.app(scope, receive, send)


def region_app(here: str, urls: dict[str, str], **env: str) -> FastAPI:
    return create_app(env={"REGION": here, "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()),
                           "REGION_SECRET": REGION_SECRET, "DISPATCHER_API_KEYS": API_KEY, "RESERVE_MAX_IDLE": "0",
                           "SIP_EDGE_SECRET": EDGE_SECRETS[here], **env},
                      machines=LocalMachines(LocalSettings(bot_command=("true",))), rooms=None)


@dataclass
class Pair:
    eu: httpx.AsyncClient  # eu's API, in-process: where the edge's words arrive
    us: httpx.AsyncClient  # us's API, in-process (the same app eu's relay reaches on its port)
    eu_app: FastAPI
    us_app: FastAPI
    urls: dict[str, str]
    heard: list[dict[str, str]]


@pytest.fixture
async def pair(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    port = free_port()
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{port}"}
    eu_app = region_app("eu", urls, SIP_EDGE_URL=f"{HOLDER},{OTHER}")
    us_app = region_app("us", urls)
    heard: list[dict[str, str]] = []
    us_app.add_middleware(Heard, seen=heard)
    eu = eu_app.state.voicefleet
    monkeypatch.setattr(eu.sessions, "room", lambda: 0)  # eu at its cap: every start spills
    seen = eu.peers.by_name["us"]  # as eu's poll of us finds it
    seen.reachable, seen.round_trip = True, 0.001
    seen.capacity = Capacity(warm={"websocket": True}, room=5, cold_start_seconds=1.0, refill_seconds=math.inf)
    try:
        async with serving(us_app, port), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=eu_app), base_url=urls["eu"]) as eu_api, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=us_app), base_url=urls["us"]) as us_api:
            yield Pair(eu_api, us_api, eu_app, us_app, urls, heard)
    finally:
        await eu.aclose()
        await us_app.state.voicefleet.aclose()


async def spilled_call(pair: Pair) -> str:
    """A priced inbound call that eu's edge HOLDER started, spilled to us; its session made there (its stream
    connecting there stood in for by its timeline's first event, which is what the end route asks of a session)."""
    answer = await pair.eu.post("/start", json=START, headers=edge(HOLDER))
    assert answer.status_code == 201, answer.text
    session_id = str(answer.json()["sessionId"])
    us = pair.us_app.state.voicefleet
    assert us.peers.regions.by_tag[region_tag_of(session_id)] == "us"  # minted there: it spilled
    us.sessions.timeline.note(session_id, "requested")
    await us.sessions.timeline.settled()
    return session_id


async def ends(pair: Pair, session_id: str) -> list[dict[str, Any]]:
    await pair.us_app.state.voicefleet.sessions.timeline.settled()
    answer = await pair.us.get(f"/sessions/{session_id}/timeline", headers=KEY)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["event"] == "sip_ended"]


async def test_a_spilled_calls_counted_end_reaches_its_region_from_the_edge_holding_it(pair: Pair) -> None:
    session_id = await spilled_call(pair)
    # eu, where its edge's words come, knows which edge holds it
    assert await pair.eu_app.state.voicefleet.trunk_calls.edges.recorded(session_id) == HOLDER
    told = await pair.eu.post(f"/sessions/{session_id}/sip_end", json=COUNTED, headers=edge(HOLDER))
    assert told.status_code == 204, told.text
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [78.214]
    relayed = [h for h in pair.heard if h[":path"].endswith("/sip_end")]
    assert len(relayed) == 1 and relayed[0].get(EDGE_VOUCHED) == "1" and relayed[0].get(RELAYED_BY) == "eu"
    assert HEADER.lower() not in relayed[0]  # eu's edge credential stays in eu


async def test_the_edge_routes_answer_a_spilled_calls_reports_here_as_before(pair: Pair) -> None:
    """eu's record of the spilled call is for its relayed end alone: its edge's reports on the call at eu's own
    edge routes find no session of eu's, as before (the session, its outcome and transfers are us's)."""
    session_id = await spilled_call(pair)
    bearer = {"Authorization": f"Bearer {edge(HOLDER)[HEADER]}"}
    for method, route, body in [("GET", "", None), ("POST", "/outcome", {"outcome": "not_placed", "trunk": "twilio"}),
                                ("POST", "/sip_end", COUNTED)]:
        answer = await pair.eu.request(method, f"/edge/calls/{session_id}{route}", json=body, headers=bearer)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found"), (route, answer.text)


@pytest.mark.parametrize(("headers", "code"), [
    (KEY, "sip_edge_only"),  # a client holding the number's key
    ({**KEY, EDGE_VOUCHED: "1"}, "sip_edge_only"),  # a client saying eu's word itself
    (edge(HOLDER, region="us"), "sip_edge_only"),  # a credential of us's secret, which eu does not know
    (edge(OTHER), "sip_edge_not_holding"),  # another of eu's edges
])
async def test_a_count_from_anyone_but_the_edge_holding_the_call_is_refused_where_it_arrives(
        pair: Pair, headers: dict[str, str], code: str) -> None:
    session_id = await spilled_call(pair)
    refused = await pair.eu.post(f"/sessions/{session_id}/sip_end", json=COUNTED, headers=headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, code), refused.text
    assert not [h for h in pair.heard if h[":path"].endswith("/sip_end")]  # nothing relayed
    assert await ends(pair, session_id) == []
    # Its end without the count crosses as before, and the holder's count after it is still taken.
    plain = await pair.eu.post(f"/sessions/{session_id}/sip_end", json={"by": "caller", "how": "bye"}, headers=headers)
    assert plain.status_code == 204, plain.text
    counted = await pair.eu.post(f"/sessions/{session_id}/sip_end", json=COUNTED, headers=edge(HOLDER))
    assert counted.status_code == 204, counted.text
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [None, 78.214]


async def test_a_forged_word_straight_at_the_region_holding_the_call_is_never_believed(pair: Pair) -> None:
    session_id = await spilled_call(pair)
    path = f"/sessions/{session_id}/sip_end"
    forged = await pair.us.post(path, json=COUNTED, headers={**KEY, EDGE_VOUCHED: "1"})
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "sip_edge_only"), forged.text
    unsigned = await pair.us.post(path, json=COUNTED, headers={**KEY, EDGE_VOUCHED: "1", RELAYED_BY: "eu"})
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "region_unauthenticated")
    # Signed as a region of the release before signs (its nonce covers no header): the word rides beside the
    # signature, so whoever sits between the regions could have added it. The end lands, its count left out.
    body = httpx.Request("POST", "http://x", json=COUNTED).content
    regions = Regions("eu", MappingProxyType(pair.urls), REGION_SECRET.encode())
    millis, nonce = str(int(time.time() * 1000)), "0" * 32
    mac = _mac(regions.secret, "eu", "us", "POST", path, millis, nonce, body)
    old = {**KEY, "Content-Type": "application/json", EDGE_VOUCHED: "1", RELAYED_BY: "eu", SENDER: "eu",
           TIME: millis, NONCE: nonce, SIGNATURE: VERSION + mac}
    uncovered = await pair.us.post(path, content=body, headers=old)
    assert uncovered.status_code == 204, uncovered.text
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [None]


async def test_a_spilled_start_the_store_cannot_record_goes_on_its_record_owed(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    edges = pair.eu_app.state.voicefleet.trunk_calls.edges

    async def not_answering(*args: object) -> str:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(edges._records, "first", not_answering)
    answer = await pair.eu.post("/start", json=START, headers=edge(HOLDER))
    monkeypatch.undo()  # the store answers again
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["sessionId"]
    assert edges.owed.owed(session_id) == HOLDER
    pair.us_app.state.voicefleet.sessions.timeline.note(session_id, "requested")
    told = await pair.eu.post(f"/sessions/{session_id}/sip_end", json=COUNTED, headers=edge(HOLDER))
    assert told.status_code == 204, told.text  # the owed record written first, then the count taken
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [78.214]


async def test_a_region_without_its_edges_list_vouches_for_no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """eu runs without SIP_EDGE_URL (its edge takes calls in only), so it records no edge for any call and has no
    word to give for one: a count an eu credential sends for a us call eu never saw (us's own edge started it)
    reaches us without eu's mark, and us keeps the end without the count."""
    port = free_port()
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{port}"}
    eu_app, us_app = region_app("eu", urls), region_app("us", urls)
    seen = eu_app.state.voicefleet.peers.by_name["us"]
    seen.reachable, seen.round_trip = True, 0.001
    try:
        async with serving(us_app, port), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=eu_app), base_url=urls["eu"]) as eu_api, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=us_app), base_url=urls["us"]) as us_api:
            started = await us_api.post("/start", json=START, headers=edge("http://10.9.9.9:5080", region="us"))
            assert started.status_code == 201, started.text
            session_id = started.json()["sessionId"]
            us = us_app.state.voicefleet
            us.sessions.timeline.note(session_id, "requested")
            await us.sessions.timeline.settled()
            told = await eu_api.post(f"/sessions/{session_id}/sip_end", json={**COUNTED, "answered_seconds": 1.0},
                                     headers=edge("http://10.1.2.3:9999", region="eu"))
            assert told.status_code == 204, told.text
            await us.sessions.timeline.settled()
            events = (await us_api.get(f"/sessions/{session_id}/timeline", headers=KEY)).json()["events"]
            assert [e.get("answered_seconds") for e in events if e["event"] == "sip_ended"] == [None], events
    finally:
        await eu_app.state.voicefleet.aclose()
        await us_app.state.voicefleet.aclose()


async def test_an_answer_too_large_or_stalled_records_no_edge(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other region's answer is read for its session id within bounds: past 64 KiB it is passed on unread, and
    one that stalls after its head is a 504 naming the way out; neither records an edge here."""
    eu = pair.eu_app.state.voicefleet
    who = eu.auth.identify(f"Bearer {API_KEY}")
    recorded: list[str] = []

    async def took(session_id: str, edge: str) -> None:
        recorded.append(session_id)

    monkeypatch.setattr(eu.trunk_calls, "took_inbound", took)

    async def huge() -> AsyncIterator[bytes]:
        yield b'{"sessionId": "' + b"x" * (edge_holder.MAX_ANSWER_BYTES + 1) + b'"}'

    passed = await edge_holder.held_elsewhere(eu, HOLDER, who, StreamingResponse(huge(), status_code=201))
    assert isinstance(passed, StreamingResponse) and passed.status_code == 201

    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"sessionId": '
        await asyncio.sleep(60)

    monkeypatch.setattr(edge_holder, "READ_SECONDS", 0.2)
    with pytest.raises(ApiError) as stalling:
        await edge_holder.held_elsewhere(eu, HOLDER, who, StreamingResponse(stalled(), status_code=201))
    assert stalling.value.status == 504 and "same Idempotency-Key" in stalling.value.message
    assert recorded == []


def signed_by_eu(pair: Pair, path: str, body: bytes, vouched: bool = True) -> dict[str, str]:
    """A request as eu's relay signs it (this release's: its nonce covers the headers), eu's word on it or not."""
    sent = {**KEY, "content-type": "application/json", RELAYED_BY: "eu", **({EDGE_VOUCHED: "1"} if vouched else {})}
    regions = Regions("eu", MappingProxyType(pair.urls), REGION_SECRET.encode())
    return {**sent, **RegionSigner(regions).headers("us", "POST", path, body, sent)}


@pytest.mark.parametrize(("relayed_by", "counted"), [("eu", 78.214), (None, None), ("ap", None)])
async def test_us_takes_a_vouched_count_only_from_the_region_that_relayed_the_calls_start(
        pair: Pair, relayed_by: str | None, counted: float | None) -> None:
    """A session us made from a start eu relayed is vouched for by eu alone; one us's own edge started (no record)
    or one another region relayed gets eu's signed word left out: the end lands, its count does not."""
    us = pair.us_app.state.voicefleet
    started = await pair.us.post("/start", json=START, headers=edge("http://10.9.9.9:5080", region="us"))
    assert started.status_code == 201, started.text
    session_id = started.json()["sessionId"]
    if relayed_by is not None:
        await us.relayed_starts.took(session_id, relayed_by)
    us.sessions.timeline.note(session_id, "requested")
    await us.sessions.timeline.settled()
    path = f"/sessions/{session_id}/sip_end"
    body = httpx.Request("POST", "http://x", json=COUNTED).content
    told = await pair.us.post(path, content=body, headers=signed_by_eu(pair, path, body))
    assert told.status_code == 204, told.text
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [counted]


async def test_a_spilled_start_us_cannot_record_goes_on_its_record_owed(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """us's store does not answer while the spilled start is taken: the start is not refused, us owes the record
    and, once its store answers, eu's word on the call's count is taken."""
    relayed = pair.us_app.state.voicefleet.relayed_starts

    async def not_answering(*args: object) -> str:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(relayed._records, "first", not_answering)
    monkeypatch.setattr(relayed._records, "held", not_answering)
    session_id = await spilled_call(pair)
    monkeypatch.undo()  # the store answers again
    assert relayed.owed.owed(session_id) == "eu"
    told = await pair.eu.post(f"/sessions/{session_id}/sip_end", json=COUNTED, headers=edge(HOLDER))
    assert told.status_code == 204, told.text
    assert [e.get("answered_seconds") for e in await ends(pair, session_id)] == [78.214]
    assert await relayed.relayer(session_id) == "eu" and relayed.owed.owed(session_id) is None  # written


def bearer(url: str, region: str = "eu") -> dict[str, str]:
    """How an edge of `region` presents its credential on the edge routes."""
    return {"Authorization": f"Bearer {EdgeSecret(EDGE_SECRETS[region]).edge_credential(url)}"}


LEG = {"event": "answered", "trunk": "twilio", "direction": "outbound", "usd_per_minute": 0.013}


async def legs(pair: Pair, session_id: str) -> list[dict[str, Any]]:
    await pair.us_app.state.voicefleet.sessions.timeline.settled()
    events = (await pair.us.get(f"/sessions/{session_id}/timeline", headers=KEY)).json()["events"]
    return [e for e in events if e["event"] == BRIDGED_LEG]


async def test_a_spilled_calls_bridged_leg_reaches_its_region_from_the_edge_holding_it(pair: Pair) -> None:
    """The person's leg of a bridged transfer (which prices its minutes) and a warm transfer's steps, told by
    the edge to eu, reach the session at us with eu's word; neither the edge's credential nor any Authorization
    header crosses."""
    session_id = await spilled_call(pair)
    for event in ("answered", "ended"):
        told = await pair.eu.post(f"/edge/calls/{session_id}/bridged", json={**LEG, "event": event},
                                  headers=bearer(HOLDER))
        assert told.status_code == 204, told.text
    assert [(e["leg"], e.get("usd_per_minute")) for e in await legs(pair, session_id)] == \
        [("answered", 0.013), ("ended", 0.013)]
    # A warm step reaches us's route, which finds no warm transfer us asked for: its own refusal, not eu's.
    step = await pair.eu.post(f"/edge/calls/{session_id}/warm", json={"event": "stop", "transfer": "t1"},
                              headers=bearer(HOLDER))
    assert (step.status_code, step.json()["error"]["code"]) == (409, "no_warm_transfer"), step.text
    relayed = [h for h in pair.heard if h[":path"].startswith("/edge/calls/")]
    assert len(relayed) == 3 and all(h.get(EDGE_VOUCHED) == "1" and h.get(RELAYED_BY) == "eu" for h in relayed)
    assert not [h for h in relayed if "authorization" in h or HEADER.lower() in h]


async def test_another_edge_or_a_client_cannot_report_a_spilled_calls_leg(pair: Pair) -> None:
    session_id = await spilled_call(pair)
    path = f"/edge/calls/{session_id}/bridged"
    other = await pair.eu.post(path, json=LEG, headers=bearer(OTHER))
    assert (other.status_code, other.json()["error"]["code"]) == (403, "sip_edge_not_holding"), other.text
    client = await pair.eu.post(path, json=LEG, headers={**KEY, EDGE_VOUCHED: "1"})
    assert client.status_code == 401, client.text
    assert not [h for h in pair.heard if h[":path"].startswith("/edge/calls/")]  # nothing relayed
    # Straight at us: its own edge routes (no SIP_EDGE_URL there), an unsigned relay, and eu's signed word on a
    # call us started itself are all refused.
    forged = await pair.us.post(path, json=LEG, headers={**KEY, EDGE_VOUCHED: "1"})
    assert forged.status_code == 401, forged.text
    unsigned = await pair.us.post(path, json=LEG, headers={**KEY, EDGE_VOUCHED: "1", RELAYED_BY: "eu"})
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "region_unauthenticated")
    started = await pair.us.post("/start", json=START, headers=edge("http://10.9.9.9:5080", region="us"))
    own = f"/edge/calls/{started.json()['sessionId']}/bridged"
    body = httpx.Request("POST", "http://x", json=LEG).content
    unrecorded = await pair.us.post(own, content=body, headers=signed_by_eu(pair, own, body))
    assert (unrecorded.status_code, unrecorded.json()["error"]["code"]) == (403, "sip_edge_only"), unrecorded.text
    assert await legs(pair, session_id) == []


async def test_us_takes_no_relayed_report_but_a_transfers_even_on_the_word_of_the_region_that_relayed_the_call(
        pair: Pair) -> None:
    """eu relays a spilled call's transfer reports only; a signed word from eu on anything else (a placed call's
    outcome, which would end the call as `busy`) is refused at us, though eu relayed the call's start."""
    session_id = await spilled_call(pair)
    path = f"/edge/calls/{session_id}/outcome"
    body = httpx.Request("POST", "http://x", json={"outcome": "busy", "trunk": "twilio"}).content
    told = await pair.us.post(path, content=body, headers=signed_by_eu(pair, path, body))
    assert (told.status_code, told.json()["error"]["code"]) == (403, "sip_edge_only"), told.text
    await pair.us_app.state.voicefleet.sessions.timeline.settled()
    events = (await pair.us.get(f"/sessions/{session_id}/timeline", headers=KEY)).json()["events"]
    assert not [e for e in events if e["event"] in ("call_outcome", "ended")], events
