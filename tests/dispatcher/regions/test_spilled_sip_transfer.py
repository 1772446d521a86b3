"""A SIP call that spilled from the region its edge reached (eu, full) to another (us) is handed to a person
through eu: us asks eu's region-only route, signed, and eu asks the edge it recorded for the call, with us's
request id. Both regions are dispatcher apps served on loopback ports in this process (each reaches the other
there); eu's edge is sipedge's own control API (sipedge/control.py `Control`: its credential check, its body's
checks, a retried request's first outcome) over a stand-in for the SIP side, whose hand-overs are counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from types import MappingProxyType, SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.routers import regions as region_routes
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone import spilled_window
from dispatcher.phone.edge_secret import HEADER, EdgeSecret
from dispatcher.phone.sip_transfers import (
    BACKOFF,
    SIP_EDGE_ACCOUNT,
    WARM_BACKOFF,
    WARM_EXTRA_SECONDS,
    answer_seconds,
)
from dispatcher.phone.spilled_transfers import SPILLED_TRANSFER_PATH
from dispatcher.phone.spilled_window import HOP_SECONDS, LEAST_WINDOW_SECONDS, edge_window
from dispatcher.phone.transfers import BUDGET_SECONDS, LiveCall
from dispatcher.regions.answer_status import STATUS_SIGNATURE, status_is_signed
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Capacity
from dispatcher.regions.signing import ANSWER_SIGNATURE, SIGNATURE, RegionSigner, answer_signature
from dispatcher.sessions.ids import region_tag_of
from dispatcher.sessions.timeline import TRANSFERRED
from dispatcher.store.unavailable import StoreUnavailable
from sipedge.call_transfer import HAND_OVER_SECONDS, Handed
from sipedge.control import Control, TransferAsked
from sipedge.warm_transfer import WARM_SECONDS
from tests.dispatcher.conftest import API_KEY
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port

REGION_SECRET = "spilled-transfer-region-secret-0123456789"
EDGE_SECRETS = {"eu": "eu-edge-secret-for-spilled-transfers-0123", "us": "us-edge-secret-for-spilled-transfers-0123"}
US_EDGES = "http://10.0.1.5:5080,http://10.0.1.6:5080"  # us's own edges (nothing listens there)
DESK = "+14155550123"
KEY = {"Authorization": f"Bearer {API_KEY}"}
START = {"transport": "exotel", "body": {"call_id": "1@trunk"},
         "sip_trunk": {"trunk": "twilio", "usd_per_minute": 0.0085}}


@dataclass
class StandInEdge:
    """eu's edge behind its real control API: each session in `held` an answered call; a hand-over is noted in
    `handed`, and a warm one first tells eu the person's step, as the edge does, its answer kept in `steps`."""

    url: str
    dispatcher: str  # eu's URL, where the edge's reports go
    held: set[str] = field(default_factory=set)
    handed: list[TransferAsked] = field(default_factory=list)
    hangs: bool = False  # the SIP side never settles: no answer comes
    steps: list[tuple[int, Any]] = field(default_factory=list)

    def answered(self, session_id: str) -> object | None:
        return object() if session_id in self.held else None

    def hand_over(self, session_id: str, held: object, asked: TransferAsked) -> Coroutine[Any, Any, Handed]:
        return self._handed(session_id, asked)

    async def _handed(self, session_id: str, asked: TransferAsked) -> Handed:
        self.handed.append(asked)
        if self.hangs:
            await asyncio.Event().wait()
        if asked.mode == "warm":
            credential = EdgeSecret(EDGE_SECRETS["eu"]).edge_credential(self.url)
            async with httpx.AsyncClient() as client:
                told = await client.post(f"{self.dispatcher}/edge/calls/{session_id}/warm",
                                         json={"event": "stop", "transfer": asked.request_id},
                                         headers={"Authorization": f"Bearer {credential}"})
            self.steps.append((told.status_code, told.json()))
        return Handed("warm" if asked.mode == "warm" else "referred", f"sip:{asked.to}@trunk", 200)


@contextlib.asynccontextmanager
async def edge_serving(edge: StandInEdge, port: int) -> AsyncIterator[None]:
    secrets = EdgeSecret(EDGE_SECRETS["eu"])
    config = SimpleNamespace(dispatcher_url=edge.dispatcher, dispatcher_credential=secrets.edge_credential(edge.url))
    control = Control(SimpleNamespace(config=config, answered=edge.answered, placing=set()),  # type: ignore[arg-type]
                      secrets.control_credential(edge.url))
    control._hand_over = edge.hand_over  # type: ignore[method-assign]
    runner = web.AppRunner(control.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await control.close()  # its transfers cancelled first: a hung one's request would hold the cleanup
        await runner.cleanup()


@dataclass
class Front:
    """What stands before eu's dispatcher on the spilled transfers' route. `lose_first`: the answer to the first ask
    is lost (eu did it, us hears a proxy's 502). `unsigned`: every ask is answered with this status and body by the
    front itself, eu never hearing of it, or (`passed`) after eu did it. `status`: eu's own answers are sent with
    this status, their headers and body kept. `older`: so many asks are answered by a replica of the release before
    (during a deploy at eu): its refusal of `seconds_left`, body-signed, edge never asked. `bare`: eu's answers lose
    their status signature on the way. `asked`: each ask's body, as it came."""

    lose_first: bool = False
    unsigned: tuple[int, bytes] | None = None
    passed: bool = False
    status: int | None = None
    older: int = 0
    bare: bool = False
    asked: list[bytes] = field(default_factory=list)


class FrontOf:
    def __init__(self, app: ASGIApp, front: Front) -> None:
        self.app, self.front = app, front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SPILLED_TRANSFER_PATH:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), bool(message.get("more_body"))
        self.front.asked.append(body)
        given = False

        async def replayed() -> Message:
            nonlocal given
            if given:
                return await receive()
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def lost(message: Message) -> None:
            return None

        async def restated(message: Message) -> None:
            if message["type"] == "http.response.start" and self.front.status is not None:
                message = {**message, "status": self.front.status}
            if message["type"] == "http.response.start" and self.front.bare:
                message = {**message, "headers": [(k, v) for k, v in message["headers"]
                                                  if k.decode().lower() != STATUS_SIGNATURE]}
            await send(message)

        if len(self.front.asked) <= self.front.older:
            await older_replica_refusal(scope, send)
        elif self.front.unsigned is not None:
            if self.front.passed:
                await self.app(scope, replayed, lost)
            await Response(self.front.unsigned[1], self.front.unsigned[0], media_type="application/json")(
                scope, receive, send)
        elif self.front.lose_first and len(self.front.asked) == 1:
            await self.app(scope, replayed, lost)
            await Response(b"bad gateway", 502)(scope, receive, send)
        else:
            await self.app(scope, replayed, restated)


async def older_replica_refusal(scope: Scope, send: Send) -> None:
    """What eu's dispatcher of the release before answered an ask naming `seconds_left`, which its ask model
    forbade: 422 `invalid_request`, signed over its body alone."""
    request_signature = dict(scope["headers"]).get(SIGNATURE.encode(), b"").decode()
    body = json.dumps({"error": {"code": "invalid_request", "message": "a spilled call's transfer: seconds_left: "
                                 "Extra inputs are not permitted"}}, separators=(",", ":")).encode()
    mac = answer_signature(REGION_SECRET.encode(), request_signature, body)
    await Response(body, 422, media_type="application/json", headers={ANSWER_SIGNATURE: mac})(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def region_app(here: str, urls: dict[str, str], **env: str) -> FastAPI:
    return create_app(env={"REGION": here, "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()),
                           "REGION_SECRET": REGION_SECRET, "DISPATCHER_API_KEYS": API_KEY, "RESERVE_MAX_IDLE": "0",
                           "SIP_EDGE_SECRET": EDGE_SECRETS[here], "PHONE_TRANSFER_TARGETS": DESK, **env},
                      machines=LocalMachines(LocalSettings(bot_command=("true",))), rooms=None)


@dataclass
class Pair:
    eu: httpx.AsyncClient  # eu's API, in-process (the app us reaches on its port)
    us: httpx.AsyncClient  # us's API, in-process (the app eu's relay reaches on its port)
    eu_app: FastAPI
    us_app: FastAPI
    urls: dict[str, str]
    edge: StandInEdge
    front: Front


@pytest.fixture
async def pair(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    eu_port, us_port, edge_port = free_port(), free_port(), free_port()
    # ap: a third region of the deployment, which holds none of these sessions (nothing listens there)
    urls = {"eu": f"http://127.0.0.1:{eu_port}", "us": f"http://127.0.0.1:{us_port}",
            "ap": f"http://127.0.0.1:{free_port()}"}
    edge = StandInEdge(f"http://127.0.0.1:{edge_port}", urls["eu"])
    eu_app = region_app("eu", urls, SIP_EDGE_URL=f"{edge.url},http://10.0.0.6:5080")
    us_app = region_app("us", urls, SIP_EDGE_URL=US_EDGES)
    front = Front()
    eu_app.add_middleware(FrontOf, front=front)
    eu, us = eu_app.state.voicefleet, us_app.state.voicefleet
    monkeypatch.setattr(eu.sessions, "room", lambda: 0)  # eu at its cap: every start spills
    for state, peer in ((eu, "us"), (us, "eu")):  # as each region's poll of the other finds it
        seen = state.peers.by_name[peer]
        seen.reachable, seen.round_trip = True, 0.001
        seen.capacity = Capacity(warm={"websocket": True}, room=5, cold_start_seconds=1.0, refill_seconds=math.inf)
    try:
        async with edge_serving(edge, edge_port), serving(eu_app, eu_port), serving(us_app, us_port), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=eu_app), base_url=urls["eu"]) as eu_api, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=us_app), base_url=urls["us"]) as us_api:
            assert await us.peers.poll(us.peers.by_name["eu"]) == []  # us reads eu's state, as its polling does
            assert us.peers.by_name["eu"].reachable
            yield Pair(eu_api, us_api, eu_app, us_app, urls, edge, front)
    finally:
        await eu.aclose()
        await us.aclose()


async def spilled_call(pair: Pair) -> tuple[str, LiveCall]:
    """An inbound call eu's edge started, spilled to us: its session made there, its stream there stood in for by
    the call us's replica keeps for its transfers (opened as the edge's stream opens it, naming eu's edge)."""
    answer = await pair.eu.post("/start", json=START,
                                headers={**KEY, HEADER: EdgeSecret(EDGE_SECRETS["eu"]).edge_credential(pair.edge.url)})
    assert answer.status_code == 201, answer.text
    session_id = str(answer.json()["sessionId"])
    us = pair.us_app.state.voicefleet
    assert us.peers.regions.by_tag[region_tag_of(session_id)] == "us"  # minted there: it spilled
    us.sessions.timeline.note(session_id, "requested")  # as its stream connecting there notes it
    await us.sessions.timeline.settled()
    pair.edge.held.add(session_id)
    start = {"event": "start", "start": {"account_sid": SIP_EDGE_ACCOUNT, "call_sid": "1@trunk", "stream_sid": "s",
                                         "edge_url": pair.edge.url}}
    call = us.phone.transfers.opened(session_id, "exotel", None,
                                     [{"type": "websocket.receive", "text": json.dumps(start)}])
    return session_id, call


async def transfer(pair: Pair, session_id: str, **body: Any) -> httpx.Response:
    return await pair.us.post(f"/sessions/{session_id}/transfer", json={"to": DESK, **body}, headers=KEY)


async def transferred_events(pair: Pair, session_id: str) -> list[dict[str, Any]]:
    await pair.us_app.state.voicefleet.sessions.timeline.settled()
    answer = await pair.us.get(f"/sessions/{session_id}/timeline", headers=KEY)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["event"] == TRANSFERRED]


async def test_a_spilled_calls_transfer_reaches_the_edge_holding_it_through_its_region(pair: Pair) -> None:
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["carrier_status"]) == (TRANSFERRED, "referred")
    assert [(a.to, a.mode, a.time_limit) for a in pair.edge.handed] == [(DESK, "cold", 3600)]
    assert pair.us_app.state.voicefleet.phone.transfers.end_reason(call, "ended") == TRANSFERRED
    assert [e["carrier_status"] for e in await transferred_events(pair, session_id)] == ["referred"]


async def test_a_region_upgraded_is_asked_as_soon_as_it_is_polled_so_while_other_readers_still_work(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """eu's version is read with the rest of its polled state: a reader of the same answer that awaits (the
    store, a release check) leaves no moment in which eu answers as this release does but is taken as older."""
    us = pair.us_app.state.voicefleet
    eu = us.peers.by_name["eu"]
    with monkeypatch.context() as older:
        older.setattr(region_routes, "SPILLED_TRANSFERS_VERSION", None)  # eu as the release before
        assert await us.peers.poll(eu) == []
    reading, go_on = asyncio.Event(), asyncio.Event()  # eu upgraded: the next poll is read slowly

    async def slow_reader(peer: Any, answer: Any) -> None:
        reading.set()
        await go_on.wait()

    us.peers.answer_listeners.insert(0, slow_reader)
    polling = asyncio.create_task(us.peers.poll(eu))
    try:
        await asyncio.wait_for(reading.wait(), 10)
        session_id, _call = await spilled_call(pair)
        answer = await transfer(pair, session_id)
        assert answer.status_code == 200, answer.text
    finally:
        go_on.set()
        await polling


async def test_a_retry_after_a_lost_answer_is_answered_with_the_first_outcome(pair: Pair) -> None:
    """eu handed the call over but its answer was lost on the way (a proxy's 502): us asks again with the same
    request id, and the edge answers with the first transfer's outcome, starting none."""
    pair.front.lose_first = True
    session_id, _ = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 200, answer.text
    assert len(pair.front.asked) == 2
    assert len(pair.edge.handed) == 1, "the retry started a second transfer at the edge"
    assert len(await transferred_events(pair, session_id)) == 1


@pytest.mark.parametrize("down", ["polled", "refused"])
async def test_a_region_down_is_503_naming_it_and_nothing_is_transferred(pair: Pair, down: str) -> None:
    session_id, call = await spilled_call(pair)
    eu = pair.us_app.state.voicefleet.peers.by_name["eu"]
    if down == "polled":
        eu.reachable, eu.problem = False, "no answer to its last polls"
    else:  # its polling has not noticed yet: no connection is made
        eu.url = f"http://127.0.0.1:{free_port()}"
    answer = await transfer(pair, session_id)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "region_unreachable" and "region eu" in error["message"], error
    assert "nothing was transferred" in error["message"] and answer.headers.get("retry-after")
    assert pair.edge.handed == [] and not call.transferring and await transferred_events(pair, session_id) == []


@pytest.mark.parametrize("version", [None, 1])
async def test_a_region_of_an_older_release_is_409_naming_the_upgrade_and_is_not_asked(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, version: int | None) -> None:
    """eu's polled state does not say it answers this route as this release asks it (a release before it): us
    asks nothing of eu, whose answers it could not read."""
    monkeypatch.setattr(region_routes, "SPILLED_TRANSFERS_VERSION", version)
    us = pair.us_app.state.voicefleet
    assert await us.peers.poll(us.peers.by_name["eu"]) == []
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "region_outdated"), answer.text
    assert "upgrade region eu" in answer.json()["error"]["message"]
    assert pair.front.asked == [] and pair.edge.handed == [] and not call.transferring


async def test_an_edge_that_never_answers_leaves_the_outcome_unknown_and_the_call_not_sent_again(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """eu's wait for its edge ends (here shortened) with no answer: the edge may have handed the call over, so
    us keeps it `transferring` and refuses a second transfer, as for its own edge."""
    monkeypatch.setattr(spilled_window, "edge_window", lambda warm: 0.5)
    pair.edge.hangs = True
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 504, answer.text
    assert (answer.json()["error"]["code"], answer.json()["error"]["outcome"]) == ("transfer_outcome_unknown",
                                                                                     "unknown")
    assert call.transferring and len(pair.edge.handed) == 1
    again = await transfer(pair, session_id)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_transferring"), again.text


def ask(session_id: str, request_id: str = "r1") -> bytes:
    return json.dumps({"session_id": session_id, "to": DESK, "request_id": request_id, "time_limit": 60}).encode()


def signed_by(pair: Pair, region: str, body: bytes) -> dict[str, str]:
    regions = Regions(region, MappingProxyType(pair.urls), REGION_SECRET.encode())
    return {**RegionSigner(regions).headers("eu", "POST", SPILLED_TRANSFER_PATH, body),
            "content-type": "application/json"}


async def test_the_route_refuses_a_client_and_an_unsigned_or_forged_request(pair: Pair) -> None:
    session_id, _ = await spilled_call(pair)
    body = ask(session_id)
    as_json = {"content-type": "application/json"}
    client = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers={**KEY, **as_json})
    assert (client.status_code, client.json()["error"]["code"]) == (401, "region_unauthenticated"), client.text
    forged = signed_by(pair, "us", body)
    forged["voicefleet-region-signature"] = "v1=" + "0" * 64
    refused = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=forged)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "region_unauthenticated"), refused.text
    changed = await pair.eu.post(SPILLED_TRANSFER_PATH, content=ask(session_id, "r2"),
                                 headers=signed_by(pair, "us", body))  # signed for another body
    assert changed.status_code == 401, changed.text
    assert pair.edge.handed == []


async def test_the_route_refuses_a_region_that_does_not_hold_the_session(pair: Pair) -> None:
    session_id, _ = await spilled_call(pair)
    body = ask(session_id)
    other = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed_by(pair, "ap", body))
    assert (other.status_code, other.json()["error"]["code"]) == (403, "region_not_holding"), other.text
    # us holds it, but eu recorded no edge for a session its edge never started: no edge is guessed
    unrecorded = "0" * 24
    body = ask(region_tag_of(session_id) + unrecorded[len(region_tag_of(session_id)):])
    none = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed_by(pair, "us", body))
    assert (none.status_code, none.json()["error"]["code"]) == (409, "spilled_call_unknown"), none.text
    assert other.json()["error"]["edge_asked"] is False and none.json()["error"]["edge_asked"] is False
    assert pair.edge.handed == []


async def test_a_spilled_calls_warm_transfer_has_its_steps_taken_where_the_session_runs(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """us records the warm transfer before asking eu: the edge's step, told to eu and relayed to us, is taken
    there (no bot listens, so it is not said: `stopped: false`), and the transfer ends warm."""
    session_id, _ = await spilled_call(pair)
    sessions = pair.us_app.state.voicefleet.sessions
    read = sessions.get

    async def live(asked: str) -> object:  # its bot's machine stood in for: the session is live at us
        return object() if asked == session_id else await read(asked)

    monkeypatch.setattr(sessions, "get", live)
    answer = await transfer(pair, session_id, mode="warm", summary="a caller about an invoice")
    assert answer.status_code == 200, answer.text
    assert answer.json()["carrier_status"] == "warm"
    assert [(a.mode, a.summary) for a in pair.edge.handed] == [("warm", "a caller about an invoice")]
    assert pair.edge.steps == [(200, {"stopped": False})], "the edge's warm step was refused where the session runs"


def test_the_call_regions_wait_fits_in_the_asking_regions_and_holds_the_edges_longest_answer() -> None:
    assert edge_window(warm=False) > HAND_OVER_SECONDS and edge_window(warm=True) > WARM_SECONDS
    # under one try's wait at the edge, so that the window alone ends the call region's ask
    assert edge_window(warm=False) < answer_seconds(warm=False) and edge_window(warm=True) < answer_seconds(warm=True)
    assert BACKOFF.deadline <= BUDGET_SECONDS
    assert WARM_BACKOFF.deadline <= BUDGET_SECONDS + WARM_EXTRA_SECONDS


FORGED_REFUSAL = json.dumps({"error": {"code": "region_not_holding", "message": "refused"}}).encode()


@pytest.mark.parametrize(("unsigned", "passed"), [
    ((502, b"bad gateway"), True),  # every answer lost after eu did it: a proxy's 502 each time
    ((409, FORGED_REFUSAL), True),  # eu did it; what us hears is a refusal eu did not sign
    ((404, b'{"detail":"Not Found"}'), False),  # something else answers at eu's URL
    ((401, b'{"error":{"code":"region_unauthenticated"}}'), False),  # eu took none of it, and cannot say so signed
], ids=["proxy-502", "forged-409", "404", "401"])
async def test_an_answer_the_region_did_not_sign_leaves_the_outcome_unknown(
        pair: Pair, unsigned: tuple[int, bytes], passed: bool) -> None:
    """A connection was made and what came back is not eu's word: eu may have handed the call over, so us says the
    outcome is unknown and keeps the call `transferring`, never a refusal that would let a second transfer go."""
    pair.front.unsigned, pair.front.passed = unsigned, passed
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 504, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["outcome"]) == ("transfer_outcome_unknown", "unknown"), error
    assert "region eu" in error["message"] and f"HTTP {unsigned[0]}" in error["message"], error
    assert len(pair.front.asked) > 1, "an unsigned answer was not tried again with the same request id"
    assert len({json.loads(asked)["request_id"] for asked in pair.front.asked}) == 1
    assert call.transferring and len(pair.edge.handed) == (1 if passed else 0)


async def test_an_ask_whose_once_record_cannot_be_made_is_refused_before_the_edge_is_asked(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """eu's store does not answer: a signed ask could be a replay taken at another replica, so it is refused, signed,
    and us tells its client nothing was transferred (not an unknown outcome: eu's edge was not asked)."""
    async def store_down(*_args: Any, **_kwargs: Any) -> bool:
        raise StoreUnavailable("the store does not answer")

    session_id, call = await spilled_call(pair)
    monkeypatch.setattr(pair.eu_app.state.voicefleet.replication.coordination.webhooks, "first_use", store_down)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "store_unavailable" and "nothing was transferred" in error["message"], error
    assert pair.edge.handed == [] and not call.transferring


async def test_a_replica_of_the_release_before_at_eu_is_not_taken_for_a_reached_ask(pair: Pair) -> None:
    """A deploy under way at eu: us polled a new replica, but its asks land on old ones, which refuse
    `seconds_left` unread. Nothing was asked of the edge: 409 naming the upgrade, and the call is free again."""
    pair.front.older = 10
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "region_outdated"), answer.text
    assert "upgrade region eu" in answer.json()["error"]["message"]
    assert len(pair.front.asked) > 1 and pair.edge.handed == [] and not call.transferring


async def test_an_ask_an_older_replica_refused_is_taken_by_a_new_one_on_the_next_try(pair: Pair) -> None:
    pair.front.older = 1
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 200, answer.text
    assert len(pair.front.asked) == 2 and [a.to for a in pair.edge.handed] == [DESK]


async def test_an_answer_stripped_of_its_status_signature_is_not_passed_off_as_an_older_replicas(
        pair: Pair) -> None:
    """Only the older release's own refusal, signed over its body, counts as nothing asked: eu's success with its
    status signature taken off on the way leaves the outcome unknown, never 'nothing was transferred'."""
    pair.front.bare = True
    session_id, call = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert (answer.status_code, answer.json()["error"]["code"]) == (504, "transfer_outcome_unknown"), answer.text
    assert call.transferring and len(pair.edge.handed) == 1


@pytest.mark.parametrize(("refused", "status"), [(False, 409), (True, 503)], ids=["handed-as-409", "refused-as-503"])
async def test_a_changed_status_of_the_regions_signed_answer_is_not_believed(
        pair: Pair, refused: bool, status: int) -> None:
    """eu's signed answer sent on with another status, its headers and body kept: its `200 referred` as a refusal
    (which would let a second transfer go), or its refusal as a `503` to try again. The status signature no
    longer matches, so us believes neither: the outcome is unknown."""
    pair.front.status = status
    session_id, call = await spilled_call(pair)
    if refused:  # eu's record names an edge it does not list: it refuses, signed, `409 sip_edge_not_here`
        edges = pair.eu_app.state.voicefleet.phone.sip.edges
        await edges.forget_inbound(session_id, pair.edge.url)
        await edges.took_inbound(session_id, "http://10.9.9.9:5080", 60)
    answer = await transfer(pair, session_id)
    assert (answer.status_code, answer.json()["error"]["code"]) == (504, "transfer_outcome_unknown"), answer.text
    assert call.transferring and len(pair.edge.handed) == (0 if refused else 1)


async def test_only_the_spilled_transfers_route_signs_its_status(pair: Pair) -> None:
    session_id, _ = await spilled_call(pair)
    body = ask(session_id)
    signed = signed_by(pair, "us", body)
    answer = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed)
    assert answer.status_code == 200, answer.text
    assert status_is_signed((REGION_SECRET.encode(),), signed, 200, answer.headers, answer.content)
    assert not status_is_signed((REGION_SECRET.encode(),), signed, 409, answer.headers, answer.content)
    assert ANSWER_SIGNATURE in answer.headers  # as a region of the release before reads it
    regions = Regions("us", MappingProxyType(pair.urls), REGION_SECRET.encode())
    state = await pair.eu.get("/regions/state", headers=RegionSigner(regions).headers("eu", "GET", "/regions/state"))
    assert state.status_code == 200 and ANSWER_SIGNATURE in state.headers and STATUS_SIGNATURE not in state.headers
    assert state.json()["spilled_transfers"] == 2


async def test_each_ask_says_what_is_left_of_the_askers_wait(pair: Pair) -> None:
    pair.front.lose_first = True  # a retry: the second ask says less is left than the first
    session_id, _ = await spilled_call(pair)
    answer = await transfer(pair, session_id)
    assert answer.status_code == 200, answer.text
    left = [json.loads(asked)["seconds_left"] for asked in pair.front.asked]
    assert len(left) == 2 and BACKOFF.deadline >= left[0] > left[1] > LEAST_WINDOW_SECONDS + HOP_SECONDS, left


def timed_ask(session_id: str, seconds_left: float) -> bytes:
    return json.dumps({"session_id": session_id, "to": DESK, "request_id": "r1", "time_limit": 60,
                       "seconds_left": seconds_left}).encode()


async def test_the_call_region_asks_its_edge_within_what_the_asker_has_left(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """eu bounds its own ask of the edge by the asker's `seconds_left` less the hop back, not by its own longest."""
    session_id, _ = await spilled_call(pair)
    sip = pair.eu_app.state.voicefleet.phone.sip
    asked = sip.ask
    windows: list[float | None] = []

    async def ask_within(session: str, body: dict[str, Any], edge: str, within: float | None = None) -> Any:
        windows.append(within)
        return await asked(session, body, edge, within=within)

    monkeypatch.setattr(sip, "ask", ask_within)
    body = timed_ask(session_id, 9.0)
    answer = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed_by(pair, "us", body))
    assert answer.status_code == 200, answer.text
    # from the ask's arrival: the checks before the edge's ask (store reads) take their share of it
    assert len(windows) == 1 and windows[0] is not None and 9.0 - HOP_SECONDS - 2.0 < windows[0] <= 9.0 - HOP_SECONDS
    assert 9.0 - HOP_SECONDS < edge_window(warm=False)
    assert len(pair.edge.handed) == 1


async def test_too_small_a_window_is_refused_by_name_before_the_edge_is_asked(pair: Pair) -> None:
    session_id, _ = await spilled_call(pair)
    body = timed_ask(session_id, LEAST_WINDOW_SECONDS + HOP_SECONDS - 0.5)
    signed = signed_by(pair, "us", body)
    answer = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed)
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["edge_asked"]) == (409, "transfer_window_too_small", False)
    assert status_is_signed((REGION_SECRET.encode(),), signed, 409, answer.headers, answer.content)
    assert pair.edge.handed == []


async def test_the_route_refuses_an_edge_that_is_not_its_own_by_name(pair: Pair) -> None:
    """eu recorded an edge for the call that its SIP_EDGE_URL does not list (the edge left it): never asked."""
    session_id, _ = await spilled_call(pair)
    edges = pair.eu_app.state.voicefleet.phone.sip.edges
    await edges.forget_inbound(session_id, pair.edge.url)
    await edges.took_inbound(session_id, "http://10.9.9.9:5080", 60)
    body = ask(session_id)
    answer = await pair.eu.post(SPILLED_TRANSFER_PATH, content=body, headers=signed_by(pair, "us", body))
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["edge_asked"]) == (409, "sip_edge_not_here", False), error
    assert pair.edge.handed == []


@pytest.mark.parametrize("record", ["expired", "another edge"])
async def test_the_call_regions_refusal_reaches_the_client_by_name(pair: Pair, record: str) -> None:
    session_id, call = await spilled_call(pair)
    edges = pair.eu_app.state.voicefleet.phone.sip.edges
    await edges.forget_inbound(session_id, pair.edge.url)
    if record == "another edge":
        await edges.took_inbound(session_id, "http://10.9.9.9:5080", 60)
    answer = await transfer(pair, session_id)
    error = answer.json()["error"]
    code = "spilled_call_unknown" if record == "expired" else "sip_edge_not_here"
    assert (answer.status_code, error["code"], error["region"]) == (409, code, "eu"), answer.text
    assert "region eu" in error["message"] and "nothing was transferred" in error["message"], error
    assert "edge_asked" not in error and not call.transferring and pair.edge.handed == []
