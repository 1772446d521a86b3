"""A region's several SIP edges (`SIP_EDGE_URL` a list): a call placed through a trunk goes to an edge that
takes it, and to the next only when one provably placed nothing (its connection refused, its answer `503
edge_full` or `edge_draining`), never after a timeout or a lost answer; a transfer goes to the edge holding the
call, the one its stream's `start` names. Each edge is the edge's real control API (sipedge/control.py) on a port of its
own, PJSIP not started (the far end's answers: tests/sip/test_outbound.py), so the orders each edge took are
what is checked; a down edge is a port nothing listens on, a hung one a socket that never answers, a
blackholed one (a gone cloud host) a listener whose full queue drops connection attempts."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, AsyncExitStack, ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from starlette.types import Message

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.outbound.retry import Backoff
from dispatcher.phone import trunk_calls
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.relay import relay_call
from dispatcher.phone.sip_edges import SipEdges, edge_urls
from dispatcher.phone.sip_transfers import SipTransfers, unshown_to_bot
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from dispatcher.phone.trunk_calls import TrunkCallSettings
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.client import Store
from dispatcher.store.first_claims import StoreFirstClaims
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.store_settings import StoreSettings
from sipedge import control, stream_frames
from sipedge.call_reports import CallReports
from sipedge.call_transfer import InboundCall
from sipedge.config import load
from sipedge.dispatcher_link import DispatcherLink
from sipedge.edge import Edge
from sipedge.outbound_call import CallOrder, run_outbound
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side
from tests.sip.edge_keys import edge_keys
from tests.support.ports import free_port

EDGE_SECRET = "edge-control-secret-for-the-tests-0123456789"
KEY = "vf_several_edges_key_0123456789abcdef"
CALL = {"to": "+14155550100", "from": "+14155550199", "trunk": "far"}
EDGE_FILE = """
dispatcher_url = "http://dispatcher.internal:8080"
control_port = 5080
control_secret_env = "EDGE_SECRET"
{control_url}
[[trunk]]
name = "far"
termination_uri = "sip:127.0.0.1:9"
callers = ["team-a"]
caller_ids = ["+14155550199"]
"""
DESK = "+14155550123"


@dataclass
class RealEdge:
    """One edge's control API: its URL, the edge, the calls it took and the sessions asked to be handed over."""
    url: str
    edge: Edge
    taken: list[CallOrder] = field(default_factory=list)
    asked_to_transfer: list[str] = field(default_factory=list)


@asynccontextmanager
async def real_edges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> AsyncIterator[list[RealEdge]]:
    """`count` edges' control APIs, each its own Edge and port; the SIP call itself is not placed."""
    edges: list[RealEdge] = []

    async def rings(order: CallOrder, *args: object) -> None:
        next(e for e in edges if e.url == order.edge_url or len(edges) == 1).taken.append(order)

    monkeypatch.setattr(control, "run_outbound", rings)
    async with AsyncExitStack() as stack:
        for index in range(count):
            path = tmp_path / f"edge{index}.toml"
            path.write_text(EDGE_FILE.format(control_url=""))
            port = free_port()
            key = edge_keys(EDGE_SECRET, f"http://127.0.0.1:{port}")["EDGE_CONTROL_KEY"]  # the dispatcher's to it
            edge = Edge(load({"SIP_EDGE_CONFIG": str(path), "EDGE_SECRET": key}), asyncio.get_running_loop())
            edge.stack.started.set()  # PJSIP itself is not started: no call goes out
            api = control.Control(edge, key)
            server = await stack.enter_async_context(TestServer(api.app(), host="127.0.0.1", port=port))
            stack.push_async_callback(edge.link.close)
            stack.push_async_callback(api.close)
            real = RealEdge(str(server.make_url("")).rstrip("/"), edge)
            monkeypatch.setattr(edge, "answered", asked_noted(real, edge.answered))
            edges.append(real)
        try:
            yield edges
        finally:
            for real in edges:
                for task in real.edge.placing:
                    task.cancel()


def asked_noted(real: RealEdge, held: Callable[[str], InboundCall | None]) -> Callable[[str], InboundCall | None]:
    """The edge's own look-up of the call a transfer names, noting that it was asked."""
    def answered(session_id: str) -> InboundCall | None:
        real.asked_to_transfer.append(session_id)
        return held(session_id)
    return answered


def fill(real: RealEdge) -> None:
    """The edge's outbound calls take every call it may place (each a flow that rings on)."""
    real.edge.placing.update(asyncio.create_task(rings_on()) for _ in range(real.edge.capacity))


async def rings_on() -> None:
    await asyncio.Event().wait()


@contextmanager
def down_edge() -> Iterator[str]:
    """An edge that is down: a port nothing listens on (its connection is refused)."""
    yield f"http://127.0.0.1:{free_port()}"


@contextmanager
def blackholed_edge() -> Iterator[str]:
    """An edge whose host is gone from a cloud subnet: its address drops connection attempts (no refusal), so
    a connection is never made. Here, a listener whose accept queue is full: the kernel drops further SYNs."""
    with socket.socket() as listening, ExitStack() as fillers:
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        address = listening.getsockname()
        for _ in range(3):
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(address)
        time.sleep(0.2)  # the fillers' handshakes done: the queue is full
        yield f"http://127.0.0.1:{address[1]}"


@contextmanager
def hung_edge() -> Iterator[str]:
    """An edge that takes the connection and never answers: the request may have reached it."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


async def place(edges: str, times: int = 1, took: dict[str, str | None] | None = None) -> list[httpx.Response]:
    """`POST /calls` `times`, at a keyed dispatcher whose SIP_EDGE_URL is `edges`; the trunks as the edges list.
    `took`: filled with the edge the dispatcher's store records for each placed session (its transfers go there)."""
    env = {"SIP_EDGE_URL": edges, "SIP_EDGE_SECRET": EDGE_SECRET, "DISPATCHER_API_KEYS": f"team-a:{KEY}"}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answers = [await client.post("/calls", json=CALL, headers={"Authorization": f"Bearer {KEY}"})
                   for _ in range(times)]
    kept = app.state.voicefleet.trunk_calls.edges
    if took is not None:
        took.update([(a.json()["session_id"], await kept.recorded(a.json()["session_id"])) for a in answers])
    await app.state.voicefleet.aclose()
    return answers


def test_sip_edge_url_lists_each_edge_s_control_api_and_refuses_one_that_is_not() -> None:
    assert edge_urls("http://10.0.1.5:5080, https://edge-b.internal:5080/") == (
        "http://10.0.1.5:5080", "https://edge-b.internal:5080")
    (upper,) = edge_urls("HTTP://10.0.1.5:5080")
    assert upper == "http://10.0.1.5:5080"  # as the edge takes its name: it refuses an upper-case scheme
    assert edge_urls("https://Edge-B.Internal:5080") == ("https://edge-b.internal:5080",)  # a host's case: one name
    with pytest.raises(SettingsError, match="names an edge twice"):
        edge_urls("http://EDGE-A.internal:5080,http://edge-a.internal:5080")
    asked = {"session_id": "s", "stream_path": "/ws/exotel/t", "to": CALL["to"], "from": CALL["from"],
             "trunk": "far", "caller": "team-a"}
    control.CallAsked.model_validate({**asked, "edge_url": upper})
    for bad in ("http://10.0.1.5:5080,", "ftp://edge:5080", "http://edge:5080/calls", "http://me:pw@edge:5080",
                "edge:5080", "http://edge:5080,http://edge:5080", "http://edge:5080?", "http://edge:5080#",
                "http://ed ge:5080"):
        with pytest.raises(SettingsError, match="SIP_EDGE_URL"):
            TrunkCallSettings.from_env({"SIP_EDGE_URL": bad, "SIP_EDGE_SECRET": EDGE_SECRET})
    # The secret in the clear across the internet: refused; a private, loopback or named edge, or TLS, taken.
    with pytest.raises(SettingsError, match="plain HTTP to a public address"):
        edge_urls("http://10.0.1.5:5080,http://198.51.99.7:5080")
    assert edge_urls("http://[fd00::5]:5080,http://127.0.0.1:5080,http://sip-edge-control.voice.svc:5080,"
                     "https://198.51.99.7:5080")[3] == "https://198.51.99.7:5080"


@pytest.mark.parametrize(("edge_away", "why"), [
    (down_edge, "refused a connection"),
    (blackholed_edge, "took no connection within 1 s"),  # a gone cloud host: a second lost, not a timeout's 18
])
async def test_with_one_edge_down_calls_go_through_the_other_and_the_down_one_is_logged_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        edge_away: Callable[[], AbstractContextManager[str]], why: str) -> None:
    caplog.set_level(logging.WARNING, "dispatcher.phone")
    took: dict[str, str | None] = {}
    async with real_edges(tmp_path, monkeypatch, 1) as (up,):
        with edge_away() as down:
            answers = await place(f"{down},{up.url}", times=2, took=took)
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert [o.session_id for o in up.taken] == [a.json()["session_id"] for a in answers]
    assert took == {o.session_id: up.url for o in up.taken}  # kept for their transfers, whatever streams say
    assert {o.edge_url for o in up.taken} == {up.url}  # the edge is told its name, for its calls' streams
    assert [r.getMessage() for r in caplog.records if down in r.getMessage()] == [
        f"SIP edge {down} {why}: the other edges are tried first for 10 s"]


def drain(real: RealEdge) -> None:
    """The edge stopping once its calls end (sipedge/drain.py), as its first SIGTERM leaves it."""
    real.edge.draining = True


@pytest.mark.parametrize("closed", [fill, drain])
async def test_a_full_or_draining_edge_passes_the_call_to_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed: Callable[[RealEdge], None]) -> None:
    async with real_edges(tmp_path, monkeypatch, 2) as (full, free):
        closed(full)
        (answer,) = await place(f"{full.url},{free.url}")
    assert answer.status_code == 201, answer.text
    assert full.taken == [] and [o.session_id for o in free.taken] == [answer.json()["session_id"]]


async def test_every_edge_full_is_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with real_edges(tmp_path, monkeypatch, 2) as edges:
        for real in edges:
            fill(real)
        (answer,) = await place(",".join(e.url for e in edges))
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "sip_edge_unavailable", answer.text
    assert "are all taken" in answer.json()["error"]["message"]  # the edge's own words
    assert int(answer.headers["Retry-After"]) >= 1


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung edge's wait, short for the tests."""
    monkeypatch.setattr(trunk_calls, "REQUEST_SECONDS", 0.3)
    monkeypatch.setattr(trunk_calls, "BACKOFF", Backoff(attempts=2, base=0.05, cap=0.05, deadline=1.0))


@pytest.mark.usefixtures("short_waits")
async def test_a_hung_edge_s_list_of_trunks_is_asked_of_the_next_and_calls_go_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with real_edges(tmp_path, monkeypatch, 1) as (other,):
        with hung_edge() as hung:
            (answer,) = await place(f"{hung},{other.url}")
    assert answer.status_code == 201, answer.text  # `GET /trunks` timed out at the hung edge: asked of the next
    assert [o.session_id for o in other.taken] == [answer.json()["session_id"]]  # the hung one is tried last


@pytest.mark.usefixtures("short_waits")
async def test_a_call_an_edge_never_answered_stays_there_and_other_calls_go_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with real_edges(tmp_path, monkeypatch, 1) as (other,):
        with hung_edge() as hung:
            calls = trunk_calls.TrunkCalls(TrunkCallSettings((hung, other.url), EDGE_SECRET), limits=None,  # type: ignore[arg-type]
                                           records=LocalFirstClaims(), max_session_seconds=1800, transfer_seconds=3600)

            async def hand_over(session_id: str) -> str:
                return await calls.hand_over({"session_id": session_id, "stream_path": "/ws/exotel/tok",
                                              "to": CALL["to"], "from": CALL["from"], "trunk": "far",
                                              "caller": "team-a"})
            with pytest.raises(ApiError) as unanswered:
                await hand_over("session-k")
            placed = await hand_over("session-l")  # another call: the hung edge is tried last
            with pytest.raises(ApiError) as again:
                await hand_over("session-k")  # its Idempotency-Key's retry: the hung edge may hold it
            await calls.aclose()
    assert unanswered.value.code == "sip_edge_unavailable"
    assert again.value.code == "sip_edge_holding" and hung in again.value.message  # held there: the way out named
    assert placed == other.url
    assert [o.session_id for o in other.taken] == ["session-l"]  # the hung edge may ring K's callee: nobody else


async def test_a_call_whose_edge_the_store_cannot_record_is_refused_and_no_edge_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the record a retry at another replica could go to a second edge: the call is refused 503 rather."""
    silent = Store(StoreSettings(url=f"redis://127.0.0.1:{free_port()}", replica_id="r-silent"))  # nothing listens
    async with real_edges(tmp_path, monkeypatch, 2) as edges:
        calls = trunk_calls.TrunkCalls(TrunkCallSettings(tuple(e.url for e in edges), EDGE_SECRET), limits=None,  # type: ignore[arg-type]
                                       records=StoreFirstClaims(silent), max_session_seconds=1800,
                                       transfer_seconds=3600)
        try:
            with pytest.raises(ApiError) as refused:
                await calls.hand_over({"session_id": "session-s", "stream_path": "/ws/exotel/tok", "to": CALL["to"],
                                       "from": CALL["from"], "trunk": "far", "caller": "team-a"})
        finally:
            await calls.aclose()
            await silent.aclose()
    assert (refused.value.status, refused.value.code) == (503, "sip_edge_unrecorded")
    assert "REDIS_URL" in refused.value.message and refused.value.retry_after
    assert [e.taken for e in edges] == [[], []]


@asynccontextmanager
async def stand_in_dispatcher() -> AsyncIterator[tuple[str, list[str], list[dict[str, object]]]]:
    """The dispatcher as an outbound call's flow meets it: its URL, the text frames the call's stream sent
    (the stream is closed after the handshake's two, before any bot joins) and the outcomes reported."""
    frames: list[str] = []
    outcomes: list[dict[str, object]] = []

    async def stream(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for message in socket_:
            if message.type == WSMsgType.TEXT:
                frames.append(message.data)
            if len(frames) == 2:
                await socket_.close()
        return socket_

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": "starting"})

    async def outcome(request: web.Request) -> web.Response:
        outcomes.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ws/exotel/{token}", stream)
    app.router.add_get("/edge/calls/{session_id}", status)
    app.router.add_post("/edge/calls/{session_id}/outcome", outcome)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), frames, outcomes


async def test_an_outbound_call_s_stream_names_the_edge_the_dispatcher_handed_it_to(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_FILE.format(control_url=""))
    edge = Edge(load({"SIP_EDGE_CONFIG": str(path), "EDGE_SECRET": EDGE_SECRET}), asyncio.get_running_loop())
    async with stand_in_dispatcher() as (dispatcher, frames, outcomes):
        link, reports = DispatcherLink(dispatcher), CallReports(dispatcher, EDGE_SECRET)
        order = CallOrder("session-b", f"{dispatcher.replace('http', 'ws')}/ws/exotel/tok.en", CALL["to"],
                          CALL["from"], "far", "http://10.0.1.6:5080")
        try:
            await asyncio.wait_for(run_outbound(order, edge.config.trunks[0], edge.stack, link, reports, 5.0), 20)
        finally:
            await link.close()
            await reports.close()
            await edge.link.close()
    start = json.loads(frames[1])
    assert start["event"] == "start" and start["start"]["edge_url"] == "http://10.0.1.6:5080", frames
    assert [o["outcome"] for o in outcomes] == ["not_placed"]  # the stream closed before a bot joined


async def test_a_transfer_goes_to_the_edge_whose_stream_named_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with real_edges(tmp_path, monkeypatch, 2) as (a, b):
        settings = TrunkCallSettings((a.url, b.url), EDGE_SECRET)
        records = LocalFirstClaims()  # as the store records an outbound call's edge (dispatcher/phone/sip_edges.py)
        transfers = Transfers(None, None, parse_transfer_targets(DESK), sip=SipTransfers(settings, records))
        # The frames edge B's outbound call opens its stream with (as the test above shows), named B.
        frames = stream_frames.handshake("stream-1", "call-1", CALL["from"], CALL["to"], b.url)
        call = transfers.opened("session-b", "exotel", None, [{"type": "websocket.receive", "text": f}
                                                               for f in frames])
        with pytest.raises(ApiError) as refused:
            await transfers.transfer(call, TransferTarget(DESK))
        # A call handed to A (by any replica: the store's record), whose stream says B: A, as recorded, is asked.
        await SipEdges((a.url, b.url), EdgeSecret(EDGE_SECRET), timeout=1.0, max_answer_bytes=1024,
                       records=records).claim("session-a", a.url, 60.0, "placing-try", needed=True)
        handed = transfers.opened("session-a", "exotel", None, [{"type": "websocket.receive", "text": f}
                                                                for f in frames])
        with pytest.raises(ApiError):
            await transfers.transfer(handed, TransferTarget(DESK))
        forged = transfers.opened("session-x", "exotel", None, [
            {"type": "websocket.receive", "text": f}
            for f in stream_frames.handshake("s", "c", "+1", "+2", "http://attacker.example:5080")])
        with pytest.raises(ApiError) as unknown:
            await transfers.transfer(forged, TransferTarget(DESK))
        await transfers._sip.aclose()  # type: ignore[union-attr]
    assert b.asked_to_transfer == ["session-b"] and a.asked_to_transfer == ["session-a"]
    assert refused.value.code == "no_live_call"  # B's answer: it holds no answered call here
    assert unknown.value.code == "sip_edge_unknown"  # an unlisted edge is never asked
    assert "control_url" in unknown.value.message


async def test_an_edge_s_control_url_is_named_in_its_calls_streams(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_FILE.format(control_url='control_url = "http://10.0.1.6:5080/"'))
    edge = Edge(load({"SIP_EDGE_CONFIG": str(path), "EDGE_SECRET": EDGE_SECRET}), asyncio.get_running_loop())
    await edge.link.close()
    assert edge.link.edge_url == "http://10.0.1.6:5080"  # what an inbound call's `start` names (call_flow.py)
    (_, start) = stream_frames.handshake("s", "c", "+1", "+2", edge.link.edge_url)
    assert json.loads(start)["start"]["edge_url"] == "http://10.0.1.6:5080"
    (_, plain) = stream_frames.handshake("s", "c", "+1", "+2")
    assert "edge_url" not in json.loads(plain)["start"]  # one edge: nothing to name


async def test_the_bot_is_sent_the_edge_s_start_without_the_edge_s_control_url() -> None:
    frames = stream_frames.handshake("stream-1", "call-1", CALL["from"], CALL["to"], "http://10.0.1.6:5080")
    carrier, bot = Side(*[{"type": "websocket.receive", "text": f} for f in frames], DISCONNECT), Side()
    read: list[Message] = []

    async def attach() -> Side:
        return bot

    async def end(reason: str) -> None:
        pass

    def read_handshake(handshake: list[Message]) -> list[Message]:  # as the carriers' route reads it
        read.extend(handshake)
        return unshown_to_bot(handshake)

    await relay_call(carrier, attach, end, handshake_seconds=5.0, handshake_read=read_handshake)  # type: ignore[arg-type]
    (connected, start) = (json.loads(m["text"]) for m in bot.sent[:2])
    assert connected == {"event": "connected"} and start["event"] == "start", bot.sent
    assert "edge_url" not in start["start"] and start["start"]["account_sid"] == "sipedge"
    assert start["start"]["from"] == CALL["from"] and start["stream_sid"] == "stream-1"
    transfers = Transfers(None, None, None)
    assert transfers.opened("s", "exotel", None, read).sip_edge == "http://10.0.1.6:5080"  # the dispatcher's own

