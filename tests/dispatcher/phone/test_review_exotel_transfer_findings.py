"""Hostile review of the Exotel transfer through the flow's Connect applet (dispatcher/phone/exotel_connect.py,
exotel_transfers.py, api/routers/exotel_connect.py): each test is a finding the product code had, and now keeps
fixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone.exotel_transfers import ExotelTransfers
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly

KEY = "exotel-review-key-0123456789"
DESK = "+919876500001"
CALL_SID = "c3d2b1a0f4e2f64a1c9d3b7a8e5f6c0d"


async def _app(fake_fly: FakeFly, fake_daily: FakeDaily, env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}))
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env=env, machines=fly_harness(fake_fly).make(), rooms=rooms)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com") as http:
        yield http
    await app.state.voicefleet.aclose()


@pytest.fixture
async def with_exotel(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _app(fake_fly, fake_daily, {"EXOTEL_API_KEY": "exo-key", "EXOTEL_API_TOKEN": "exo-token"}):
        yield http


async def test_a_wrong_connect_secret_looks_like_no_such_route(with_exotel: httpx.AsyncClient) -> None:
    """A stranger cannot tell a wrong secret from an unknown path, nor learn that this deployment takes Exotel."""
    answer = await with_exotel.get("/phone/exotel/connect/not-the-secret", params={"CallSid": CALL_SID})
    assert answer.status_code == 404, answer.text
    assert "Exotel" not in answer.text


async def test_exotels_fallback_get_after_a_lost_primary_answer_still_dials_the_person() -> None:
    """The API said transferred: Exotel's Fallback URL, asked because the primary's answer was lost, dials too."""
    records = LocalFirstClaims()
    exotel = ExotelTransfers(records, fetch_seconds=5.0, poll_seconds=0.01)
    closed = asyncio.Event()

    async def end_stream() -> None:
        closed.set()

    asking = asyncio.create_task(exotel.hand_over("session-x", CALL_SID, TransferTarget(DESK), 900, end_stream))
    await asyncio.wait_for(closed.wait(), 10)
    primary = await exotel.answer(CALL_SID)  # answered, but its body never reached Exotel
    await asking  # the asker now says "transferred"
    fallback = await exotel.answer(CALL_SID)  # Exotel's fallback URL, asked because the primary failed
    assert primary is not None and fallback is not None and fallback[0].to == DESK


@pytest.fixture
async def without_exotel(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _app(fake_fly, fake_daily, {}):
        yield http


async def test_a_wrong_secret_and_a_deployment_without_exotel_answer_what_an_unknown_path_does(
    with_exotel: httpx.AsyncClient, without_exotel: httpx.AsyncClient,
) -> None:
    """Nothing tells a stranger whether the deployment hands Exotel calls over, or which settings it reads."""
    unknown = await with_exotel.get("/phone/exotel/no-such-route", params={"CallSid": CALL_SID})
    wrong = await with_exotel.get("/phone/exotel/connect/not-the-secret", params={"CallSid": CALL_SID})
    unset = await without_exotel.get("/phone/exotel/connect/not-the-secret", params={"CallSid": CALL_SID})
    assert unknown.status_code == wrong.status_code == unset.status_code == 404
    assert unknown.json() == wrong.json() == unset.json()
