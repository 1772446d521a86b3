"""A call placed through Telnyx's TeXML Calls API: a real dispatcher, a real bot (tests/phone/echo_bot.py),
the strict fake of Telnyx's create (tests/fakes/telnyx_outbound.py) that takes it, sends its Ed25519-signed
status callbacks over the network to the dispatcher's PHONE_PUBLIC_URL, and (as Telnyx does once the far
end answers) opens the stream its TeXML names, Telnyx-shaped (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from click.testing import CliRunner

from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

TO, FROM = "+14155550100", "+14155550199"
CALL = {"to": TO, "from": FROM, "carrier": "telnyx", "body": {"campaign": "renewals"}}


@pytest.fixture(scope="module")
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=5)) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, telnyx: FakeTelnyxCalls) -> Iterator[DispatcherProcess]:
    port = free_port()  # Telnyx is told the dispatcher's own address (PHONE_PUBLIC_URL), never a request's Host
    env = {**phone_env(tmp_path_factory.mktemp("calls")), **telnyx.env(), "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    with run_dispatcher(tmp_path_factory.mktemp("telnyx-out"), env, port=port) as running:
        yield running


@pytest.fixture
async def api(dispatcher: DispatcherProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher.base_url, timeout=60) as client:
        yield client


async def test_an_answered_telnyx_call_streams_to_a_bot_that_talks(api: httpx.AsyncClient,
                                                                  telnyx: FakeTelnyxCalls) -> None:
    await wait_for_idle_bot(api)
    answer = await api.post("/calls", json=CALL)
    assert answer.status_code == 201, answer.text
    session_id, placed = answer.json()["session_id"], telnyx.placed[-1]
    assert all(a.status_code == 204 for a in await telnyx.answer(placed.sid))
    line = CarrierCall("telnyx", placed.stream_url, call_id=placed.sid)
    await line.open()
    await line.handshake()
    try:
        assert await line.next_bot_audio(timeout=60)  # the bot's greeting, on the call Telnyx placed
        session = (await api.get(f"/sessions/{session_id}")).json()
        assert session["status"] in ("started", "joined"), session
    finally:
        await line.hang_up()
    for _ in range(300):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        if any(e["event"] == "ended" for e in events):
            break
        await asyncio.sleep(0.1)
    called = [(e.get("outcome"), e.get("call_sid"), e.get("carrier")) for e in events if e["event"] == "call_outcome"]
    assert called == [("answered", placed.sid, "telnyx")], events


async def test_the_command_places_a_call_through_telnyx_and_follows_it_to_its_outcome(
        dispatcher: DispatcherProcess, telnyx: FakeTelnyxCalls) -> None:
    before = len(telnyx.placed)
    command = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, voicefleet,
        ["calls", "place", TO, "--from", FROM, "--carrier", "telnyx", "--voicemail", "message", "--wait", "60"],
        env={"VOICEFLEET_URL": dispatcher.base_url, "VOICEFLEET_ADMIN_KEY": None, "VOICEFLEET_API_KEY": None}))
    if not await FakeTelnyxCalls.eventually(lambda: len(telnyx.placed) > before, timeout=30):
        raise AssertionError(f"no call reached Telnyx: {(await command).output}")
    placed = telnyx.placed[-1]
    assert placed.one("MachineDetection") == "DetectMessageEnd"  # `message`: the verdict at the beep
    assert all(a.status_code == 204 for a in await telnyx.finish(placed.sid, "no-answer"))
    result = await command
    session_id, said = result.output.splitlines()[:2]
    assert len(session_id) == 24 and said == "no_answer", result.output
    assert result.exit_code == 1, result.output  # not answered: a script can tell
