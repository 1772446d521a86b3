"""A pace's home region: the same wherever it is computed; a home asked once per turn, signed, and
passed over (this region's share of the pace, after the hand-over) when it cannot be asked: down,
hanging, or answering unsigned; the home paces only the regions it hears from; and its route
refuses what no region sent and what is not a pace's turn. Real HTTP on loopback; the home here a
real dispatcher app."""

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
from dispatcher.regions.config import Regions
from dispatcher.regions.pace_homes import HANDOVER_SECONDS, PACE_PATH, RegionPaces, pace_home
from dispatcher.regions.peers import Peers
from dispatcher.regions.signing import ANSWER_SIGNATURE, SIGNATURE, RegionSigner, answer_signature
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.fakes.server import FakeServer
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
def home_answering(answer: Callable[[Request], Awaitable[Response]]) -> Iterator[tuple[str, list[float]]]:
    """A stand-in at the home's URL that answers each ask with `answer(request)`; the times it was asked."""
    asked: list[float] = []

    async def pace(request: Request) -> Response:
        asked.append(time.monotonic())
        return await answer(request)

    with FakeServer(Starlette(routes=[Route(PACE_PATH, pace, methods=["POST"])])) as server:
        yield server.url, asked


async def unsigned(_request: Request) -> Response:
    return JSONResponse({"granted": True, "wait": 0})  # what a region would say, without REGION_SECRET


async def hanging(_request: Request) -> Response:
    await asyncio.sleep(3)
    return JSONResponse({"granted": True, "wait": 0})


async def failing(_request: Request) -> Response:
    return JSONResponse({"error": {"code": "store_unavailable"}}, status_code=503)


async def signed_past_the_wait(request: Request) -> Response:
    """Signed as a region signs, a turn an hour away: a call would sleep on it."""
    body = json.dumps({"granted": True, "wait": 3600}).encode()
    mac = answer_signature(SECRET.encode(), request.headers.get(SIGNATURE, ""), body)
    return Response(body, media_type="application/json", headers={ANSWER_SIGNATURE: mac})


@pytest.mark.parametrize("answer", [unsigned, hanging, failing, signed_past_the_wait],
                         ids=["unsigned", "hanging", "5xx", "past_the_wait"])
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


def home_app(folder: Path, urls: dict[str, str]) -> FastAPI:
    env = {"REGION": "eu", "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()), "REGION_SECRET": SECRET,
           "DISPATCHER_API_KEYS": "k" * 24, "RESERVE_MAX_IDLE": "0", "PHONE_TOKEN_SECRET": "p" * 32}
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
                    {**good, "per_second": 0}, {**good, "per_second": float("inf")}, {**good, "per_second": True},
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
