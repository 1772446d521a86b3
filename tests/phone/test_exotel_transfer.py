"""An Exotel call handed to a person, cold: a real dispatcher, a real bot (tests/phone/echo_bot.py), the
Voicebot applet's stream with Exotel's Basic credential (tests/fakes/carriers.py), and the flow's Connect
applet after it (tests/fakes/exotel_flow.py), which GETs the dispatcher's URL once the stream ends and rings
the number it is answered."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from dispatcher.phone.exotel_connect import connect_secret
from tests.fakes.carriers import CarrierCall
from tests.fakes.exotel_flow import ExotelFlow
from tests.phone.conftest import phone_env
from tests.phone.test_transfer import ended_transferred, session_of
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

ADMIN = {"Authorization": f"Bearer {METRICS_KEY}"}
EXOTEL_KEY, EXOTEL_TOKEN = "exotel-transfer-key", "exotel-transfer-token"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{EXOTEL_KEY}:{EXOTEL_TOKEN}".encode()).decode()}
DESK = "+919876500001"  # the person's
_sids = itertools.count(1)


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = phone_env(tmp_path_factory.mktemp("calls"))
    env.update({"DISPATCHER_ADMIN_KEYS": METRICS_KEY, "EXOTEL_API_KEY": EXOTEL_KEY, "EXOTEL_API_TOKEN": EXOTEL_TOKEN,
                "PHONE_TRANSFER_TARGETS": DESK})
    with run_dispatcher(tmp_path_factory.mktemp("exotel-transfer"), env) as running:
        yield running


@pytest.fixture
async def api(dispatcher: DispatcherProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher.base_url, timeout=60) as client:
        yield client


def flow(api: httpx.AsyncClient, secret: str | None = None) -> ExotelFlow:
    base = str(api.base_url).rstrip("/")
    return ExotelFlow(f"{base}/phone/exotel/connect/{secret or connect_secret(f'{EXOTEL_KEY}:{EXOTEL_TOKEN}')}")


async def exotel_call(api: httpx.AsyncClient) -> tuple[CarrierCall, str]:
    """A call as Exotel's Voicebot applet streams it, once its bot answered, and its session."""
    ws = str(api.base_url).replace("http://", "ws://").rstrip("/") + "/ws/exotel"
    call = CarrierCall("exotel", ws, headers=BASIC, call_id=f"{next(_sids):032x}")
    await call.open()
    await call.handshake()
    return call, await session_of(api, call)


async def test_the_connect_applet_after_the_bot_dials_the_person_and_the_session_ends_transferred(
    api: httpx.AsyncClient,
) -> None:
    exotel = flow(api)
    call, session_id = await exotel_call(api)
    # Before any transfer, a Connect GET for the call dials no one (and records nothing).
    early = await exotel.connect(call)
    assert (early.dialled, early.why) == ([], "no_number"), early
    after_the_bot = asyncio.create_task(exotel.after_the_bot(call))
    answer = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK, "mode": "cold"}, headers=ADMIN)
    outcome = await after_the_bot
    assert answer.status_code == 200, answer.text
    assert (answer.json()["carrier"], answer.json()["carrier_status"]) == ("exotel", "connect_fetched")
    assert (outcome.dialled, outcome.why) == ([DESK], "dialled"), outcome
    assert outcome.answers[-1].json()["max_conversation_duration"] == 3600
    events = await ended_transferred(api, session_id)
    transferred = [e for e in events if e["event"] == "transferred"]
    assert transferred and (transferred[0]["carrier"], transferred[0]["to"]) == ("exotel", DESK)
    assert not [e for e in events if e["event"] == "caller_hung_up"], events  # the close was the transfer
    # The applet's GET again (its Fallback URL, the primary's answer lost) dials the same person; a wrong URL
    # is answered as no such route.
    again = await exotel.connect(call)
    assert (again.dialled, again.why) == ([DESK], "dialled"), again
    forged = await flow(api, "not-the-secret").connect(call)
    assert forged.dialled == [] and forged.answers[0].status_code == 404, forged


async def test_a_cold_transfer_nobody_answers_comes_back_through_a_second_voicebot_applet_to_a_fresh_bot(
    api: httpx.AsyncClient,
) -> None:
    """The flow docs/phone.md suggests while a warm transfer is missing: no answer leads to a second Voicebot
    applet. Its stream, the same call's, is a new session with a bot of its own; the first ended transferred."""
    exotel = replace(flow(api), person="no-answer", voicebot_after_no_answer=True)
    call, session_id = await exotel_call(api)
    after_the_bot = asyncio.create_task(exotel.after_the_bot(call))
    answer = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK, "mode": "cold"}, headers=ADMIN)
    outcome = await after_the_bot
    assert answer.status_code == 200, answer.text
    assert (outcome.dialled, outcome.transition) == ([DESK], "no-answer"), outcome
    await ended_transferred(api, session_id)
    back = exotel.voicebot_again(call, outcome)
    await back.open()
    await back.handshake()
    again = await session_of(api, back)  # the fresh bot answers the caller
    assert again != session_id
    await back.hang_up()


async def test_warm_is_refused_and_the_bot_keeps_the_call(api: httpx.AsyncClient) -> None:
    call, session_id = await exotel_call(api)
    answer = await api.post(f"/sessions/{session_id}/transfer", json={"to": DESK, "mode": "warm"}, headers=ADMIN)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "warm_unsupported"), answer.text
    assert "Exotel" in answer.json()["error"]["message"]
    await call.next_bot_audio(timeout=30)  # still the bot's: its stream streams on
    outcome = await flow(api).connect(call)
    assert outcome.dialled == [], outcome
    await call.hang_up()
