"""A call placed through Twilio's Calls API, answered: a real dispatcher, a real bot (tests/phone/echo_bot.py),
the strict fake of Twilio's Calls resource (tests/fakes/twilio_outbound.py) that takes the create, sends its
signed status callbacks to the dispatcher, and (as Twilio does once the far end answers) opens the stream
its TwiML names, Twilio-shaped (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from click.testing import CliRunner

from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

TO, FROM = "+14155550100", "+14155550199"
CALL = {"to": TO, "from": FROM, "carrier": "twilio", "body": {"campaign": "renewals"}}


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilioCalls]:
    # Above the dispatcher's pace (1 a second): creates a second apart may reach the fake a hair closer.
    with serve(FakeTwilioCalls(create_per_second=5)) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, twilio: FakeTwilioCalls) -> Iterator[DispatcherProcess]:
    port = free_port()  # Twilio is told the dispatcher's own address (PHONE_PUBLIC_URL), never a request's Host
    env = {**phone_env(tmp_path_factory.mktemp("calls")), **twilio.env(), "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    with run_dispatcher(tmp_path_factory.mktemp("twilio-out"), env, port=port) as running:
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


async def test_the_command_places_a_call_through_twilio_and_follows_it_to_its_outcome(
        dispatcher: DispatcherProcess, twilio: FakeTwilioCalls) -> None:
    before = len(twilio.placed)
    command = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, voicefleet,
        ["calls", "place", TO, "--from", FROM, "--carrier", "twilio", "--voicemail", "message",
         "--wait", "60"],
        env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": None, "VOICEFLEET_API_KEY": None}))
    if not await FakeTwilioCalls.eventually(lambda: len(twilio.placed) > before, timeout=30):
        raise AssertionError(f"no call reached Twilio: {(await command).output}")
    placed = twilio.placed[-1]
    assert placed.one("MachineDetection") == "DetectMessageEnd"  # `message`: the verdict at the beep
    assert all(a.status_code == 204 for a in await twilio.finish(placed.sid, "busy"))
    result = await command
    session_id, said = result.output.splitlines()[:2]
    assert len(session_id) == 24 and said == "busy", result.output
    assert result.exit_code == 1, result.output  # not answered: a script can tell
