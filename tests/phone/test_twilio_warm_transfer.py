"""A Twilio call handed to a person warm, end to end: a real dispatcher, a real bot (tests/phone/echo_bot.py,
whose `transfer_call(…, mode="warm")` asks it over its channel), the call in through the signed webhook,
and the strict Twilio fake (tests/fakes/twilio_outbound.py) playing the person: its signed status
callbacks and the consult call's `<Redirect>` reach the dispatcher over the network, at its
PHONE_PUBLIC_URL. The bot names no briefing, so it answers the dispatcher's `line` with its default one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from botchannel.transfer import DEFAULT_BRIEFING
from tests.fakes.server import serve
from tests.fakes.twilio import FakeTwilio
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.phone.conftest import phone_env
from tests.phone.test_transfer import DESK, KEY, LINE, answered_call, ended_transferred, twilio_ends_the_stream
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilioCalls]:
    with serve(FakeTwilioCalls(numbers=(LINE,))) as fake:  # the person is called from the number dialled
        yield fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory,
               twilio: FakeTwilioCalls) -> Iterator[tuple[DispatcherProcess, Path]]:
    reports = tmp_path_factory.mktemp("calls")
    port = free_port()
    env = {**phone_env(reports), **twilio.env(), "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "PHONE_TEST_TRANSFER_LINE": LINE, "PHONE_TEST_TRANSFER_TO": DESK, "PHONE_TEST_TRANSFER_MODE": "warm",
           "PHONE_TRANSFER_TARGETS": DESK, "DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": METRICS_KEY}
    env["LOCAL_BOT_ENV"] += ",PHONE_TEST_TRANSFER_LINE,PHONE_TEST_TRANSFER_TO,PHONE_TEST_TRANSFER_MODE"
    with run_dispatcher(tmp_path_factory.mktemp("warm"), env, port=port) as running:
        yield running, reports


@pytest.fixture
async def api(dispatcher: tuple[DispatcherProcess, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher[0].base_url, timeout=60) as client:
        yield client


async def test_the_bot_s_warm_transfer_briefs_the_person_then_joins_the_caller_to_them(
    dispatcher: tuple[DispatcherProcess, Path], api: httpx.AsyncClient, twilio: FakeTwilioCalls,
) -> None:
    call, at_twilio, session_id = await answered_call(api, twilio, to=LINE)  # the bot transfers these, warm
    assert await FakeTwilio.eventually(lambda: bool(twilio.placed), timeout=30)
    person = twilio.placed[0]
    assert (person.one("To"), person.one("From")) == (DESK, LINE)
    assert at_twilio.twiml == []  # the caller is still with the bot while the person rings
    assert all(a.status_code == 204 for a in await twilio.answer(person.sid))
    await twilio.brief(person.sid)
    await twilio_ends_the_stream(at_twilio, call)
    assert person.said == [DEFAULT_BRIEFING]  # the bot's own line, asked of it over its channel
    assert {person.sid, at_twilio.sid} in twilio.conferences.values(), twilio.conferences
    answer_file = dispatcher[1] / f"{session_id}.transfer.json"
    assert await FakeTwilio.eventually(answer_file.exists, timeout=30)
    answer = json.loads(answer_file.read_text())
    assert (answer["status"], answer["mode"], answer["carrier_status"]) == ("transferred", "warm", "warm"), answer
    events = await ended_transferred(api, session_id)
    assert [(e["to"], e["mode"]) for e in events if e["event"] == "transferred"] == [(DESK, "warm")]
