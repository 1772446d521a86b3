"""A call placed through a carrier's Calls API (Twilio's, Telnyx's TeXML), answered: a real dispatcher, a
real bot (tests/phone/echo_bot.py), and the carrier's strict fake (tests/fakes/twilio_outbound.py,
tests/fakes/telnyx_outbound.py) that takes the create, sends its signed status callbacks over the network
to the dispatcher's PHONE_PUBLIC_URL, and (as the carrier does once the far end answers) opens the stream
its XML names, in the carrier's shape (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from click.testing import CliRunner

from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

TO, FROM = "+14155550100", "+14155550199"
DESK = "+14155550123"  # the person a placed call is handed to
FAKES = {"twilio": FakeTwilioCalls, "telnyx": FakeTelnyxCalls}


@pytest.fixture(scope="module", params=sorted(FAKES))
def carrier(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeTwilioCalls]]:
    # Above the dispatcher's pace (1 a second): creates a second apart may reach the fake a hair closer.
    with serve(FAKES[request.param](create_per_second=5)) as fake:
        yield request.param, fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory,
               carrier: tuple[str, FakeTwilioCalls]) -> Iterator[DispatcherProcess]:
    port = free_port()  # the carrier is told the dispatcher's own address (PHONE_PUBLIC_URL), never a request's Host
    env = {**phone_env(tmp_path_factory.mktemp("calls")), **carrier[1].env(),
           "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}", "PHONE_TRANSFER_TARGETS": DESK,
           **calls_allowed(carrier[0], (FROM,))}
    with run_dispatcher(tmp_path_factory.mktemp(f"{carrier[0]}-out"), env, port=port) as running:
        yield running


@pytest.fixture
async def api(dispatcher: DispatcherProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher.base_url, timeout=60) as client:
        yield client


async def placed_and_answered(api: httpx.AsyncClient, carrier: tuple[str, FakeTwilioCalls]) -> tuple[str, PlacedCall]:
    """A call placed through `carrier` once a bot is idle, answered by the callee: its session and the call."""
    name, fake = carrier
    await wait_for_idle_bot(api)
    answer = await api.post("/calls", json={"to": TO, "from": FROM, "carrier": name})
    assert answer.status_code == 201, answer.text
    placed = fake.placed[-1]
    assert all(a.status_code == 204 for a in await fake.answer(placed.sid))
    return answer.json()["session_id"], placed


async def streamed(name: str, placed: PlacedCall) -> CarrierCall:
    """The stream the carrier opens for the answered call, its handshake sent."""
    line = CarrierCall(name, placed.stream_url, call_id=placed.sid)
    await line.open()
    await line.handshake()
    return line


async def test_an_answered_call_streams_to_a_bot_that_talks(api: httpx.AsyncClient,
                                                           carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    await wait_for_idle_bot(api)
    answer = await api.post("/calls", json={"to": TO, "from": FROM, "carrier": name, "body": {"campaign": "renewals"}})
    assert answer.status_code == 201, answer.text
    session_id, placed = answer.json()["session_id"], fake.placed[-1]
    assert answer.json()["call_sid"] in (placed.sid, None)  # Telnyx's create answer names no call
    assert all(a.status_code == 204 for a in await fake.answer(placed.sid))
    line = CarrierCall(name, placed.stream_url, call_id=placed.sid)
    await line.open()
    await line.handshake()
    try:
        assert await line.next_bot_audio(timeout=60)  # the bot's greeting, on the call the carrier placed
        session = (await api.get(f"/sessions/{session_id}")).json()
        assert session["status"] in ("started", "joined"), session
        # The carrier's detection says a person answered: the bot host takes the verdict (this bot registered
        # no handler for it: bot/answered_by.py), and the timeline says so.
        verdict = await fake.detect(placed.sid, "human")
        assert verdict is not None and verdict.status_code == 204, verdict
        told = [e.get("bot") for e in (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
                if e["event"] == "answered_by"]
        assert told == ["no_handler"], told
    finally:
        await line.hang_up()
    for _ in range(300):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        if any(e["event"] == "ended" for e in events):
            break
        await asyncio.sleep(0.1)
    called = [(e.get("outcome"), e.get("call_sid"), e.get("carrier")) for e in events if e["event"] == "call_outcome"]
    assert called == [("answered", placed.sid, name)], events


async def test_a_verdict_that_came_before_the_bot_is_told_to_it_once_it_attaches(
        api: httpx.AsyncClient, carrier: tuple[str, FakeTwilioCalls]) -> None:
    """The carrier's detection may decide before the session's bot is on the call (a cold start): the verdict
    waits with the call's values and reaches the bot when its stream attaches, at whichever replica."""
    name, fake = carrier
    session_id, placed = await placed_and_answered(api, carrier)
    verdict = await fake.detect(placed.sid, "human")  # before the carrier opened the stream: no bot yet
    assert verdict is not None and verdict.status_code == 204, verdict
    line = await streamed(name, placed)
    try:
        assert await line.next_bot_audio(timeout=60)
        for _ in range(300):
            events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
            if any(e["event"] == "answered_by_told" for e in events):
                break
            await asyncio.sleep(0.1)
        told = [(e["event"], e["answered_by"], e.get("bot")) for e in events if e["event"].startswith("answered_by")]
        assert told == [("answered_by", "human", "no_bot"), ("answered_by_told", "human", "no_handler")], told
    finally:
        await line.hang_up()


async def test_a_placed_call_is_handed_to_a_person_by_the_key_that_placed_it(
        api: httpx.AsyncClient, carrier: tuple[str, FakeTwilioCalls]) -> None:
    name = carrier[0]
    session_id, placed = await placed_and_answered(api, carrier)
    line = await streamed(name, placed)
    try:
        assert await line.next_bot_audio(timeout=60)  # the bot talks on the call the carrier placed
        handed = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK})
        assert handed.status_code == 200, handed.text
        assert handed.json()["status"] == "transferred" and handed.json()["carrier"] == name
        assert len(placed.twiml) == 1 and f"<Number>{DESK}</Number>" in placed.twiml[0], placed.twiml
    finally:
        await line.hang_up()


async def test_the_command_places_a_call_and_follows_it_to_its_outcome(
        dispatcher: DispatcherProcess, carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    before = len(fake.placed)
    command = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, voicefleet,
        ["calls", "place", TO, "--from", FROM, "--carrier", name, "--voicemail", "message", "--wait", "60"],
        env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": None, "VOICEFLEET_API_KEY": None}))
    if not await FakeTwilioCalls.eventually(lambda: len(fake.placed) > before, timeout=30):
        raise AssertionError(f"no call reached {name}: {(await command).output}")
    placed = fake.placed[-1]
    assert placed.one("MachineDetection") == "DetectMessageEnd"  # `message`: the verdict at the beep
    assert all(a.status_code == 204 for a in await fake.finish(placed.sid, "busy"))
    result = await command
    session_id, said = result.output.splitlines()[:2]
    assert len(session_id) == 24 and said == "busy", result.output
    assert result.exit_code == 1, result.output  # not answered: a script can tell
