"""A pace's home region: the same wherever it is computed; a home asked once per turn, signed, and
passed over (this region's share of the pace, after the hand-over) when it cannot be asked: down,
hanging, or answering unsigned, several times in a row (one failure refuses that call alone), its
hand-over kept through a recovery; a burst waits for its own slots; while the regions' REGIONS
differ every bucket is paced alone; the home paces only the regions it hears from, at its own rate
at most; and its route refuses what no region sent and what is not a pace's turn. Real HTTP on
loopback; the home here a real dispatcher app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.twilio_dial import dial_settings_from_env
from dispatcher.regions.calls import REST_SECONDS
from dispatcher.regions.config import Regions
from dispatcher.regions.pace_homes import (
    ASKS_PER_HOME,
    HANDOVER_SECONDS,
    LINGER_SECONDS,
    MAX_WAIT_SECONDS,
    PACE_PATH,
    PASS_OVER_FAILURES,
    RegionPaces,
    pace_home,
)
from dispatcher.regions.peers import STATE_PATH, Peers
from dispatcher.regions.signing import ANSWER_SIGNATURE, SIGNATURE, RegionSigner, answer_signature
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import FakeServer
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.support.ports import free_port

SECRET = "region-secret-0123456789abcdefghij"
MAX_WAIT = 5.0


def bucket_at(home: str, urls: dict[str, str]) -> str:
    """A Twilio account's bucket whose home is `home`."""
    return next(b for n in range(1000) if pace_home(urls, b := f"twilio:AC{n:032x}") == home)


def test_a_pace_s_home_is_one_region_in_any_order_and_moves_only_when_it_leaves() -> None:
    three = {"eu": "", "us": "", "ap": ""}
    buckets = [f"trunk:t{n}" for n in range(300)]
    homes = {b: pace_home(three, b) for b in buckets}
    assert all(pace_home({"ap": "", "us": "", "eu": ""}, b) == homes[b] for b in buckets)
    assert set(homes.values()) == {"eu", "us", "ap"}
    assert all(pace_home({"eu": "", "us": ""}, b) == homes[b] for b in buckets if homes[b] != "ap")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def paces_at(here: str, urls: dict[str, str], clock: Clock | None = None) -> RegionPaces:
    peers = Peers(Regions(here, MappingProxyType(urls), SECRET.encode()))
    return RegionPaces(peers, LocalCoordination(), clock=clock or Clock())


@contextmanager
def home_answering(answer: Callable[[Request], Awaitable[Response]], *,
                   state: Callable[[Request], Awaitable[Response]] | None = None) -> Iterator[tuple[str, list[float]]]:
    """A stand-in at the home's URL that answers each ask with `answer(request)`, and its state's polls with
    `state(request)` where given; the times it was asked."""
    asked: list[float] = []

    async def pace(request: Request) -> Response:
        asked.append(time.monotonic())
        return await answer(request)

    routes = [Route(PACE_PATH, pace, methods=["POST"]), *([Route(STATE_PATH, state)] if state else [])]
    with FakeServer(Starlette(routes=routes)) as server:
        yield server.url, asked


async def unsigned(_request: Request) -> Response:
    return JSONResponse({"granted": True, "wait": 0})  # what a region would say, without REGION_SECRET


async def hanging(_request: Request) -> Response:
    await asyncio.sleep(3)
    return JSONResponse({"granted": True, "wait": 0})


async def failing(_request: Request) -> Response:
    return JSONResponse({"error": {"code": "store_unavailable"}}, status_code=503)


def signed(request: Request, data: object) -> Response:
    """`data` answered as a region answers: signed over the request's signature."""
    body = json.dumps(data).encode()
    mac = answer_signature(SECRET.encode(), request.headers.get(SIGNATURE, ""), body)
    return Response(body, media_type="application/json", headers={ANSWER_SIGNATURE: mac})


@pytest.mark.parametrize("answer", [unsigned, hanging, failing], ids=["unsigned", "hanging", "5xx"])
async def test_a_home_that_cannot_be_asked_is_asked_once_then_this_region_paces_its_share(answer: Any) -> None:
    clock = Clock()
    with home_answering(answer) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        bucket = bucket_at("eu", urls)
        paces = paces_at("us", urls, clock)
        try:
            first = await paces.turn(bucket, 2.0, MAX_WAIT)
            # Refused through the hand-over: the home's full-rate turns may still be due, and it has not heard.
            assert not first.granted and "home region eu does not answer" in first.refusal, first
            assert first.wait == pytest.approx(HANDOVER_SECONDS + MAX_WAIT)
            assert paces.alone() == ["eu"]
            assert not (await paces.turn(bucket, 2.0, MAX_WAIT)).granted
            assert len(asked) == 1  # never asked again for the turn, nor while it rests
            clock.now += HANDOVER_SECONDS + MAX_WAIT  # past its rest too: asked once more, then its share
            turns = [await paces.turn(bucket, 2.0, MAX_WAIT) for _ in range(3)]
        finally:
            await paces.aclose()
    assert len(asked) == 2
    assert all(turn.granted and "home eu does not answer" in turn.by for turn in turns)
    # Its share: 2 calls a second ÷ 2 regions, one a second.
    assert [round(turn.wait) for turn in turns] == [0, 1, 2]


async def test_a_signed_turn_past_the_wait_refuses_that_call_and_leaves_the_home_asked() -> None:
    """The home answered (signed) with a turn an hour away: the call would sleep on it, so it is refused, its
    wait bounded as a refusal's; the home is up, never passed over."""
    async def far(request: Request) -> Response:
        return signed(request, {"granted": True, "wait": 7200})

    with home_answering(far) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        paces = paces_at("us", urls)
        try:
            turns = [await paces.turn(bucket_at("eu", urls), 1.0, MAX_WAIT) for _ in range(PASS_OVER_FAILURES + 1)]
            assert paces.alone() == []
        finally:
            await paces.aclose()
    assert len(asked) == PASS_OVER_FAILURES + 1
    assert all(not t.granted and t.by == "home eu" and t.wait == MAX_WAIT_SECONDS for t in turns), turns


async def test_a_home_that_fails_now_and_then_refuses_only_the_calls_whose_ask_failed() -> None:
    """One ask in 12 fails (a 503) at a home the polls reach: that call alone is refused, each time,
    and the home is never passed over (once, every call for the hand-over and its rest was)."""
    asked = [0]

    async def flaky(request: Request) -> Response:
        asked[0] += 1
        return await failing(request) if asked[0] % 12 == 0 else signed(request, {"granted": True, "wait": 0})

    clock = Clock()
    with home_answering(flaky) as (url, _):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        paces = paces_at("us", urls, clock)
        paces._peers.by_name["eu"].reachable = True  # as its polls find it
        try:
            turns = []
            for _ in range(96):
                turns.append(await paces.turn(bucket_at("eu", urls), 1000.0, MAX_WAIT))
                clock.now += 0.5
            assert paces.alone() == []
        finally:
            await paces.aclose()
    refused = [turn for turn in turns if not turn.granted]
    assert len(refused) == 96 // 12, [t.refusal for t in refused]
    assert all(t.by == "home eu" and "counts as spent" in t.refusal for t in refused), refused


async def test_a_home_failing_asks_in_a_row_is_passed_over_and_its_hand_over_outlasts_a_recovery() -> None:
    down = [True]

    async def home(request: Request) -> Response:
        return await failing(request) if down[0] else signed(request, {"granted": True, "wait": 0})

    clock = Clock()
    with home_answering(home) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        bucket = bucket_at("eu", urls)
        paces = paces_at("us", urls, clock)
        paces._peers.by_name["eu"].reachable = True
        try:
            first = [await paces.turn(bucket, 2.0, MAX_WAIT) for _ in range(3)]
            assert ["counts as spent" in t.refusal for t in first] == [True, True, False], first
            assert "does not answer" in first[2].refusal and first[2].wait == pytest.approx(HANDOVER_SECONDS + MAX_WAIT)
            assert paces.alone() == ["eu"] and len(asked) == 3
            clock.now += HANDOVER_SECONDS + MAX_WAIT  # past its rest: asked again, and it answers
            down[0] = False
            assert (await paces.turn(bucket, 2.0, MAX_WAIT)).by == "home eu"
            down[0] = True  # and fails again, in a row, while still listed: no second hand-over
            again = [await paces.turn(bucket, 2.0, MAX_WAIT) for _ in range(3)]
            assert again[2].granted and "home eu does not answer" in again[2].by, again
            clock.now += REST_SECONDS + LINGER_SECONDS + MAX_WAIT
            assert paces.alone() == []  # listed no longer: the home paces at the whole pace again
        finally:
            await paces.aclose()


async def test_a_region_that_passed_a_home_over_lists_it_no_longer_once_it_paces_nothing_alone() -> None:
    clock = Clock()
    with home_answering(failing) as (url, _):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        us = paces_at("us", urls, clock)
        try:
            assert not (await us.turn(bucket_at("eu", urls), 2.0, MAX_WAIT)).granted  # polls say eu is away too
            assert us.alone() == ["eu"]
            clock.now += 3600.0  # an hour with no call on eu's paces
            assert us.alone() == []
        finally:
            await us.aclose()


async def test_a_burst_of_calls_waits_for_its_own_slots_and_never_passes_a_healthy_home_over() -> None:
    """Calls by the hundred at once, the home 0.3 s away: at most `ASKS_PER_HOME` asks in flight; a call
    that finds no slot in time is refused alone, and no ask's deadline counts a wait for a connection."""
    flight = [0, 0]  # now, most

    async def far(request: Request) -> Response:
        flight[0] += 1
        flight[1] = max(flight)
        await asyncio.sleep(0.3)
        flight[0] -= 1
        return signed(request, {"granted": False, "wait": 6.0})  # over the pace: a healthy home's refusal

    with home_answering(far) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        bucket = bucket_at("eu", urls)
        paces = paces_at("us", urls)
        paces._peers.by_name["eu"].reachable = True
        try:
            turns = await asyncio.gather(*(paces.turn(bucket, 1.0, MAX_WAIT) for _ in range(400)))
            after = await paces.turn(bucket, 1.0, MAX_WAIT)
            assert paces.alone() == []
        finally:
            await paces.aclose()
    assert all(turn.by == "home eu" for turn in turns), {t.by for t in turns}
    assert flight[1] <= ASKS_PER_HOME and len(asked) < 400
    assert any("asking its home region eu for a turn at once" in t.refusal for t in turns)
    assert after.by == "home eu" and after.wait == 6.0


async def test_each_home_s_asks_have_connections_of_their_own() -> None:
    """Four homes, each asked by a burst at once: every home's slots reach it, so more asks are in flight
    than one pool of 100 connections held (one home's burst never waits for another's connections)."""
    flight = [0, 0]  # now, most

    async def held(request: Request) -> Response:
        flight[0] += 1
        flight[1] = max(flight)
        until = time.monotonic() + 0.7
        while flight[1] <= 100 and time.monotonic() < until:  # answers once more than 100 are in, or late
            await asyncio.sleep(0.01)
        flight[0] -= 1
        return signed(request, {"granted": True, "wait": 0})

    with home_answering(held) as (url, _):
        urls = {"us": "http://127.0.0.1:1", **{name: url for name in ("eu", "ap", "sa", "af")}}
        paces = paces_at("us", urls)
        for peer in paces._peers.by_name.values():
            peer.reachable = True
        try:
            buckets = [bucket_at(home, urls) for home in ("eu", "ap", "sa", "af")]
            await asyncio.gather(*(paces.turn(b, 1000.0, MAX_WAIT) for b in buckets for _ in range(ASKS_PER_HOME)))
        finally:
            await paces.aclose()
    assert flight[1] > 100, flight


async def test_a_refusal_of_the_ask_itself_refuses_that_call_and_leaves_the_home_asked() -> None:
    """A 4xx (the route's bounds: a setting the home refuses) says the home is up."""
    async def refusing(_request: Request) -> Response:
        return JSONResponse({"error": {"code": "invalid_request"}}, status_code=400)

    with home_answering(refusing) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:1"}
        paces = paces_at("us", urls)
        try:
            turns = [await paces.turn(bucket_at("eu", urls), 1.0, MAX_WAIT) for _ in range(4)]
            assert paces.alone() == []
        finally:
            await paces.aclose()
    assert len(asked) == 4 and all(not t.granted and "refused this call's turn (answered 400)" in t.refusal
                                   for t in turns), turns


def test_the_pace_settings_keep_within_what_a_home_takes() -> None:
    for name, value in (("TWILIO_CALL_MAX_WAIT_SECONDS", "7200"), ("TWILIO_CALLS_PER_SECOND", "1001")):
        with pytest.raises(SettingsError, match=name):
            dial_settings_from_env({name: value}, "TWILIO")


async def test_while_the_regions_name_different_regions_every_bucket_is_paced_alone_within_the_pace() -> None:
    """REGIONS changed one deploy at a time (ap being removed, eu deployed first): by eu's REGIONS a
    bucket's home is eu, by us's and ap's it is ap. eu and ap (which cannot hear each other: neither
    takes the other's signed poll) each serve it; us, hearing both listings, paces alone."""
    three = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2", "ap": "http://127.0.0.1:3"}
    two = {name: three[name] for name in ("eu", "us")}
    bucket = next(b for n in range(2000) if pace_home(three, b := f"twilio:AC{n:032x}") == "ap"
                  and pace_home(two, b) == "eu")
    clock = Clock()
    eu, us, ap = paces_at("eu", two), paces_at("us", three, clock), paces_at("ap", three)
    listing = {"two": Regions("eu", MappingProxyType(two), SECRET.encode()).listing(),
               "three": Regions("eu", MappingProxyType(three), SECRET.encode()).listing()}
    for paces, peer, regions in ((us, "eu", "two"), (us, "ap", "three")):
        paces._peers.by_name[peer].reachable = True
        await paces._heard(paces._peers.by_name[peer], {"regions": listing[regions]})
    assert us.alone() == ["ap", "eu"]
    for paces in (eu, ap):  # each hears us, and us's state
        heard = paces._peers.by_name["us"]
        heard.reachable = True
        await paces._heard(heard, {"regions": listing["three"], "pacing_alone": us.alone()})

    async def rate(paces: RegionPaces) -> float:
        await paces.turn(bucket, 3.0, MAX_WAIT)
        return 1 / (await paces.turn(bucket, 3.0, MAX_WAIT)).wait

    assert not (await us.turn(bucket, 3.0, MAX_WAIT)).granted  # the hand-over first
    clock.now += HANDOVER_SECONDS + MAX_WAIT
    rates = {name: await rate(paces) for name, paces in (("eu", eu), ("ap", ap), ("us", us))}
    assert sum(rates.values()) <= 3.0 * 1.02, rates  # each a third: never two homes' worth
    for paces in (eu, us, ap):
        await paces.aclose()


async def test_the_home_paces_only_the_share_of_the_regions_it_hears_from() -> None:
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}
    bucket = bucket_at("eu", urls)
    paces = paces_at("eu", urls)
    us = paces._peers.by_name["us"]

    async def second_wait(name: str) -> float:
        await paces.serve(name, 2.0, MAX_WAIT)
        return (await paces.serve(name, 2.0, MAX_WAIT))[1]

    assert await second_wait(bucket) == pytest.approx(1.0, abs=0.05)  # us unheard: its share set aside
    us.reachable = True
    assert await second_wait(bucket + "x") == pytest.approx(0.5, abs=0.05)  # both ask here: the whole pace
    await paces._heard(us, {"pacing_alone": ["eu"]})  # us reaches nobody at eu's URL, though eu reaches it
    assert await second_wait(bucket + "y") == pytest.approx(1.0, abs=0.05)
    await paces.aclose()


async def test_one_region_takes_its_turns_from_its_own_store_and_asks_nobody() -> None:
    paces = RegionPaces(Peers(Regions()), LocalCoordination())
    turns = [await paces.turn("twilio:AC1", 1.0, MAX_WAIT) for _ in range(2)]
    assert [t.by for t in turns] == ["", ""] and round(turns[1].wait) == 1


def home_app(folder: Path, urls: dict[str, str], extra: dict[str, str] | None = None) -> FastAPI:
    env = {"REGION": "eu", "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()), "REGION_SECRET": SECRET,
           "DISPATCHER_API_KEYS": "k" * 24, "RESERVE_MAX_IDLE": "0", "PHONE_TOKEN_SECRET": "p" * 32, **(extra or {})}
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    return create_app(env=env, machines=machines, rooms=None)


def signed_ask(urls: dict[str, str], sender: str, body: object) -> tuple[bytes, dict[str, str]]:
    content = json.dumps(body).encode()
    regions = Regions(sender, MappingProxyType({**urls, sender: "http://127.0.0.1:3"}), SECRET.encode())
    return content, {**RegionSigner(regions).headers("eu", "POST", PACE_PATH, content),
                     "content-type": "application/json"}


async def test_the_pace_route_refuses_what_no_region_sent_and_what_is_no_pace(tmp_path: Path) -> None:
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}
    app = home_app(tmp_path, urls)
    good = {"bucket": bucket_at("eu", urls), "per_second": 1, "max_wait": MAX_WAIT}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=urls["eu"]) as client:
        async def ask(sender: str, body: object) -> httpx.Response:
            content, headers = signed_ask(urls, sender, body)
            return await client.post(PACE_PATH, content=content, headers=headers)

        assert (await client.post(PACE_PATH, json=good)).status_code == 401  # unsigned
        stranger = await ask("ap", good)  # a region this deployment does not list
        assert stranger.status_code == 401 and "not another region" in stranger.text
        for bad in ({**good, "bucket": "fly:app"}, {**good, "bucket": "trunk:"},
                    {**good, "bucket": "trunk:" + "t" * 65}, {**good, "bucket": "trunk:a\nb"}, {**good, "bucket": 7},
                    {**good, "per_second": 0}, {**good, "per_second": 1e-6}, {**good, "per_second": float("inf")},
                    {**good, "per_second": True},
                    {**good, "max_wait": -1}, {**good, "max_wait": 1e9}, [good], None):
            refused = await ask("us", bad)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request", bad
        elsewhere = await ask("us", {**good, "bucket": bucket_at("us", urls)})
        assert elsewhere.status_code == 409 and elsewhere.json()["error"]["code"] == "not_pace_home"
        content, headers = signed_ask(urls, "us", good)
        turn = await client.post(PACE_PATH, content=content, headers=headers)
        assert turn.status_code == 200 and turn.json() == {"granted": True, "wait": 0}
        assert turn.headers.get("voicefleet-region-answer", "").startswith("v1=")
        replayed = await client.post(PACE_PATH, content=content, headers=headers)
        assert replayed.status_code == 401 and "already taken" in replayed.text
    await app.state.voicefleet.aclose()


async def test_the_home_paces_another_region_at_its_own_account_s_rate_at_most(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The home's own TWILIO_CALLS_PER_SECOND (1) holds for an ask at 1000 a second, said once in its log."""
    bucket = f"twilio:{ACCOUNT_SID}"
    other = next(name for name in ("us", "ap", "sa", "af", "me") if pace_home({"eu": "", name: ""}, bucket) == "eu")
    urls = {"eu": f"http://127.0.0.1:{free_port()}", other: f"http://127.0.0.1:{free_port()}"}
    twilio = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_CALLS_PER_SECOND": "1",
              "TWILIO_API_URL": "http://127.0.0.1:1", "DISPATCHER_API_KEYS": f"dialer:{'k' * 24}",
              **calls_allowed("twilio", caller="dialer")}
    app = home_app(tmp_path, urls, twilio)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=urls["eu"]) as client:
        waits = []
        for _ in range(2):
            content, headers = signed_ask(urls, other, {"bucket": bucket, "per_second": 1000, "max_wait": MAX_WAIT})
            waits.append((await client.post(PACE_PATH, content=content, headers=headers)).json()["wait"])
    # The asker unheard: its share set aside, so 1 call a second ÷ 2 regions (at the asker's rate, 2 ms).
    assert waits == [0, pytest.approx(2.0, abs=0.05)], waits
    assert sum(f"{other} paces twilio:" in r.getMessage() and "the lower holds" in r.getMessage()
               for r in caplog.records) == 1
    await app.state.voicefleet.aclose()
