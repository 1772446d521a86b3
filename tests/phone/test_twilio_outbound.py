"""A call placed through Twilio's Calls API, answered: a real dispatcher, a real bot (tests/phone/echo_bot.py),
the strict fake of Twilio's Calls resource (tests/fakes/twilio_outbound.py) that takes the create, sends its
signed status callbacks to the dispatcher, and (as Twilio does once the far end answers) opens the stream
its TwiML names, Twilio-shaped (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

CALL = {"to": "+14155550100", "from": "+14155550199", "carrier": "twilio", "body": {"campaign": "renewals"}}


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilioCalls]:
    with serve(FakeTwilioCalls()) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, twilio: FakeTwilioCalls) -> Iterator[DispatcherProcess]:
    env = phone_env(tmp_path_factory.mktemp("calls"))
    env.update(twilio.env())
    with run_dispatcher(tmp_path_factory.mktemp("twilio-out"), env) as running:
        yield running


@pytest.fixture
async def api(dispatcher: DispatcherProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher.base_url, timeout=60) as client:
        yield client


async def test_an_answered_call_streams_to_a_bot_that_talks(api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    await wait_for_idle_bot(api)
    answer = await api.post("/calls", json=CALL)
    assert answer.status_code == 201, answer.text
    session_id, sid = answer.json()["session_id"], answer.json()["call_sid"]
    placed = twilio.calls_by_sid[sid]
    assert isinstance(placed, PlacedCall)
    assert all(a.status_code == 204 for a in await twilio.answer(sid))
    line = CarrierCall("twilio", placed.stream_url, call_id=sid)
    await line.open()
    await line.handshake()
    try:
        assert await line.next_bot_audio(timeout=60)  # the bot's greeting, on the call Twilio placed
        session = (await api.get(f"/sessions/{session_id}")).json()
        assert session["status"] in ("started", "joined"), session
    finally:
        await line.hang_up()
    for _ in range(300):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        if any(e["event"] == "ended" for e in events):
            break
        await asyncio.sleep(0.1)
    called = [(e.get("outcome"), e.get("call_sid")) for e in events if e["event"] == "call_outcome"]
    assert called == [("answered", sid)], events
