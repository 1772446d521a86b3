"""Review of a trunk call's INVITE spaced at the trunk's `cps` (dispatcher/phone/invite_spacing.py, the edge's
`GET /edge/calls/{id}` held until the call's turn): what the edge is told after the hold, a turn taken by
two asks at once, and the turn's time read by a replica whose clock differs from the one that took it.

With several regions, the INVITE bucket's home region gives each call's turn (dispatcher/regions/pace_homes.py).

Clocks are the test's own (fixed) wherever a wait is compared; the one real hold is about a second and only
its answer is checked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.invite_spacing import NOT_YET, InviteSpacing
from dispatcher.phone.trunk_calls import TrunkInfo
from dispatcher.regions.calls import REST_SECONDS
from dispatcher.regions.config import Regions
from dispatcher.regions.pace_homes import HANDOVER_SECONDS, INVITES, PASS_OVER_FAILURES, RegionPaces, pace_home
from dispatcher.regions.peers import Peers
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_trunk_calls import SteppedBuckets, listed
from tests.dispatcher.regions.test_pace_homes import SECRET as REGION_SECRET
from tests.dispatcher.regions.test_pace_homes import Clock, home_answering, home_app, signed
from tests.fakes.server import FakeServer

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE = "http://127.0.0.1:9"
SIGNED = {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential(EDGE)}"}
CPS = 1.0  # a turn a second
SLOW_CPS = 0.01  # a turn every 100 s: what two regions' asks say never depends on how fast the test runs


class RoundTrips(LocalFirstClaims):
    """The store's records as a real store answers them: a read's answer travels back while another ask runs."""

    async def held(self, what: str) -> str | None:
        value = await super().held(what)
        await asyncio.sleep(0)
        return value


async def cps(_: str) -> float:
    return CPS


async def slow(_: str) -> float:
    return SLOW_CPS


def homed_at_eu(urls: dict[str, str]) -> str:
    """A trunk whose INVITE bucket's home region is eu."""
    return next(n for n in (f"far{i}" for i in range(100)) if pace_home(urls, f"{INVITES}:{n}") == "eu")


async def test_a_call_that_ended_during_its_invite_hold_is_not_told_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": EDGE, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    calls = state.trunk_calls
    listed(calls, TrunkInfo("far", cps=CPS))
    # The turns on the test's clock: however long a busy host takes between the two asks, the call's turn is
    # one turn after the one due now, so its answer is held (a real hold of a second) and read again.
    calls.invites = InviteSpacing(SteppedBuckets(), LocalFirstClaims())
    session = SimpleNamespace(machine=SimpleNamespace(state=SimpleNamespace(value="joined")))
    read = asyncio.Event()

    async def get(_: str) -> SimpleNamespace:
        read.set()
        return session

    monkeypatch.setattr(state.sessions, "get", get)  # the session's store: its status is what is varied
    try:
        await calls.edges.claim("vf_call", EDGE, 600, "token", needed=True)
        await calls.invites.handed("vf_before", "far")
        assert await calls.invite_wait("vf_before") == 0  # the turn due now: the call's own is a turn later
        await calls.invites.handed("vf_call", "far")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            asked = asyncio.create_task(api.get("/edge/calls/vf_call", headers=SIGNED))
            await read.wait()
            session.machine.state.value = "ended"  # cancelled while its answer is held
            answer = await asked
    finally:
        await state.aclose()
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ended", answer.json()


async def test_a_call_that_ended_before_its_invite_gives_its_turn_to_the_next_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge's poll that reads the session ended gives its INVITE turn back: the next call's INVITE takes it."""
    app = create_app(Settings(), env={"SIP_EDGE_URL": EDGE, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    calls = state.trunk_calls
    listed(calls, TrunkInfo("far", cps=SLOW_CPS))
    session = SimpleNamespace(machine=SimpleNamespace(state=SimpleNamespace(value="ended")))  # stopped

    async def get(_: str) -> SimpleNamespace:
        return session

    monkeypatch.setattr(state.sessions, "get", get)
    try:
        await calls.edges.claim("vf_call", EDGE, 600, "token", needed=True)
        for name in ("vf_before", "vf_call", "vf_next"):
            await calls.invites.handed(name, "far")
        assert await calls.invite_wait("vf_before") == 0
        assert round(await calls.invite_wait("vf_call") * SLOW_CPS) == 1  # its turn taken while it had joined
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            answer = await api.get("/edge/calls/vf_call", headers=SIGNED)
        nxt = await calls.invite_wait("vf_next")
    finally:
        await state.aclose()
    assert answer.json()["status"] == "ended", answer.text
    assert round(nxt * SLOW_CPS) == 1, nxt  # vf_call's turn, not the one after it


async def test_two_asks_at_once_take_one_turn_for_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    buckets, records = SteppedBuckets(), RoundTrips()
    replicas = [InviteSpacing(buckets, records) for _ in range(2)]
    await replicas[0].handed("vf_first", "far")
    await replicas[0].handed("vf_next", "far")
    waits = await asyncio.gather(*(r.wait("vf_first", cps) for r in replicas))
    assert waits == [0.0, 0.0]  # both said the same turn
    assert await replicas[0].wait("vf_next", cps) == 1 / CPS  # the next call: one turn later, not two


async def test_every_replica_says_the_same_wait_for_a_call_whatever_its_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    buckets, records = SteppedBuckets(), LocalFirstClaims()
    ahead, behind = InviteSpacing(buckets, records), InviteSpacing(buckets, records)
    await ahead.handed("vf_call", "far")
    monkeypatch.setattr(time, "time", lambda: 5002.0)  # this replica's clock 2 s ahead
    said_ahead = await ahead.wait("vf_call", cps)
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    said_behind = await behind.wait("vf_call", cps)
    assert said_ahead == said_behind == 0.0, (said_ahead, said_behind)


async def test_two_regions_calls_joined_at_once_reach_the_trunk_a_turn_apart(tmp_path: Path) -> None:
    """The trunk's INVITE bucket has one home region (eu, a real dispatcher on loopback, whose state us polls:
    it lists the INVITE bucket's kind); us asks it, signed, so a carrier counting the trunk's `cps` (Twilio error
    32001, https://www.twilio.com/docs/api/errors/32001) sees the two regions' INVITEs a turn apart, not together.
    The hand-over's longest wait here is a few turns, so us's turn is within it."""
    trunk = homed_at_eu({"eu": "", "us": ""})
    served: list[FastAPI] = []

    async def eu_app(scope: Any, receive: Any, send: Any) -> None:  # built once its URL is known
        await served[0](scope, receive, send)

    with FakeServer(eu_app) as home:
        urls = {"eu": home.url, "us": "http://127.0.0.1:2"}
        app = home_app(tmp_path, urls)
        served.append(app)
        us = RegionPaces(Peers(Regions("us", MappingProxyType(urls), REGION_SECRET.encode())), LocalCoordination())
        regions = [InviteSpacing(app.state.voicefleet.region_paces, LocalFirstClaims()),  # each region's own store
                   InviteSpacing(us, LocalFirstClaims(), max_wait=3 / SLOW_CPS)]
        try:
            assert await us._peers.poll(us._peers.by_name["eu"]) == [] and us._peers.by_name["eu"].reachable
            for n, region in enumerate(regions):
                await region.handed(f"vf_call_{n}", trunk)
            waits = [await region.wait(f"vf_call_{n}", slow) for n, region in enumerate(regions)]
            again = await regions[1].wait("vf_call_1", slow)  # the edge's poll again: the same turn, none taken
        finally:
            await us.aclose()
    await app.state.voicefleet.aclose()
    assert abs(waits[0] - waits[1]) >= 1 / SLOW_CPS, waits
    assert again == pytest.approx(waits[1], abs=5.0), (again, waits)


async def test_a_home_that_does_not_answer_holds_the_invite_and_is_passed_over_for_this_region_s_share() -> None:
    """What the edge is told while the INVITE bucket's home does not answer: not yet (it asks again), and, once
    the home is passed over and its hand-over past, the call's turn of this region's share of the `cps`."""
    clock = Clock()
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}  # nothing listens at eu's
    trunk = homed_at_eu(urls)
    us = RegionPaces(Peers(Regions("us", MappingProxyType(urls), REGION_SECRET.encode())), LocalCoordination(),
                     clock=clock)
    spacing = InviteSpacing(us, LocalFirstClaims(), max_wait=5.0)
    try:
        await spacing.handed("vf_call", trunk)
        told = [await spacing.wait("vf_call", slow) for _ in range(PASS_OVER_FAILURES)]
        assert told == [NOT_YET] * PASS_OVER_FAILURES  # never `joined` on a turn nobody gave
        clock.now += HANDOVER_SECONDS + 5.0 + REST_SECONDS
        await spacing.handed("vf_next", trunk)
        assert await spacing.wait("vf_call", slow) == 0.0  # this region's share, in its own store
        assert await spacing.wait("vf_next", slow) == pytest.approx(2 / SLOW_CPS, abs=5.0)  # cps ÷ 2 regions
    finally:
        await us.aclose()


async def test_a_home_of_an_earlier_release_leaves_each_region_spacing_its_own_invites() -> None:
    """A home whose signed state lists no kinds of bucket (a release without the INVITE bucket, which refuses it
    400): the call is spaced in its own region's store at the trunk's whole `cps`, as before, never held waiting
    for a turn no home gives, and that home is not asked for it."""
    async def older(_request: Request) -> Response:
        return JSONResponse({"error": {"code": "invalid_request"}}, status_code=400)

    listing: list[str] = []

    async def older_state(request: Request) -> Response:  # what a region of that release says it is, signed
        return signed(request, {"region": "eu", "regions": listing[0], "capacity": {}})

    with home_answering(older, state=older_state) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:2"}
        listing.append(Regions("eu", MappingProxyType(urls), REGION_SECRET.encode()).listing())
        trunk = homed_at_eu(urls)
        us = RegionPaces(Peers(Regions("us", MappingProxyType(urls), REGION_SECRET.encode())), LocalCoordination())
        spacing = InviteSpacing(us, LocalFirstClaims())
        try:
            assert await us._peers.poll(us._peers.by_name["eu"]) == [] and us._peers.by_name["eu"].reachable
            for name in ("vf_a", "vf_b"):
                await spacing.handed(name, trunk)
            waits = [await spacing.wait(name, slow) for name in ("vf_a", "vf_b")]
        finally:
            await us.aclose()
    assert asked == [] and [round(w * SLOW_CPS) for w in waits] == [0, 1], waits  # a turn apart at the whole cps


async def test_each_call_is_told_its_own_turn_a_turn_apart_and_the_same_turn_when_asked_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What was checked sound: one ask after another (the edge's polls) hold the call's one turn."""
    monkeypatch.setattr(time, "time", lambda: 5000.0)
    spacing = InviteSpacing(SteppedBuckets(), LocalFirstClaims())
    for name in ("vf_a", "vf_b"):
        await spacing.handed(name, "far")
    assert [await spacing.wait(n, cps) for n in ("vf_a", "vf_b", "vf_a", "vf_b")] == [0.0, 1 / CPS, 0.0, 1 / CPS]
    assert await spacing.wait("vf_unrecorded", cps) == 0.0  # handed over by an older dispatcher: not held


async def test_a_turn_past_the_hold_is_answered_started_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """What was checked sound: the edge's poll is held at most HOLD_SECONDS; a later turn is `started` at once."""
    app = create_app(Settings(), env={"SIP_EDGE_URL": EDGE, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    calls = state.trunk_calls
    listed(calls, TrunkInfo("far", cps=0.05))  # a turn every 20 s
    session = SimpleNamespace(machine=SimpleNamespace(state=SimpleNamespace(value="joined")))

    async def get(_: str) -> SimpleNamespace:
        return session

    monkeypatch.setattr(state.sessions, "get", get)
    try:
        await calls.edges.claim("vf_call", EDGE, 600, "token", needed=True)
        await calls.invites.handed("vf_before", "far")
        assert await calls.invite_wait("vf_before") == 0
        await calls.invites.handed("vf_call", "far")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            answer = await asyncio.wait_for(api.get("/edge/calls/vf_call", headers=SIGNED), 60)
    finally:
        await state.aclose()
    assert answer.json()["status"] == "started", answer.text
