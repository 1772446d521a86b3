"""Hostile review of the Exotel transfer through the flow's Connect applet (dispatcher/phone/exotel_connect.py,
exotel_transfers.py, api/routers/exotel_connect.py). A strict-xfail test is a finding while the product code
has it."""

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


@pytest.mark.xfail(strict=True, reason=(
    "LOW: exotel_connect.py's docstring says 'Whoever lacks it gets a 404', but a wrong secret is answered "
    "403 'this is not this deployment's Exotel Connect applet URL' while a deployment without Exotel answers "
    "404 'EXOTEL_API_KEY and EXOTEL_API_TOKEN are unset': any stranger learns whether a deployment hands "
    "Exotel calls over (and which setting names it uses). Fix: answer a wrong secret as the route answers "
    "an unknown path (404 not_found, no hint)."))
async def test_a_wrong_connect_secret_looks_like_no_such_route(with_exotel: httpx.AsyncClient) -> None:
    answer = await with_exotel.get("/phone/exotel/connect/not-the-secret", params={"CallSid": CALL_SID})
    assert answer.status_code == 404, answer.text
    assert "Exotel" not in answer.text


@pytest.mark.xfail(strict=True, reason=(
    "LOW/MEDIUM: the transfer is answered 200 `transferred` (connect_fetched) as soon as a GET claimed the "
    "answer record, before Exotel has the body. Exotel contacts the applet's Fallback URL 'in case something "
    "goes wrong with your Primary URL' (support.exotel.com article 3000096873): a primary GET whose answer "
    "was lost or timed out at Exotel is retried there and answered no number, so nobody is dialled while "
    "the API and the timeline said transferred (a failed transfer answered 2xx). Fix: answer the same "
    "number to every GET for the CallSid while the transfer's record lives (the give-up claim still shuts "
    "out GETs after it), and document that the fallback URL may be the same URL."))
async def test_exotels_fallback_get_after_a_lost_primary_answer_still_dials_the_person() -> None:
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
