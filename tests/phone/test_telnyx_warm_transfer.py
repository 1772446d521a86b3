"""A Telnyx call handed to a person warm, end to end: a real dispatcher and bot (tests/phone/echo_bot.py), the
call in through Telnyx's signed TeXML webhook, the transfer asked with `POST /sessions/{id}/transfer`, and the
strict Telnyx fake (tests/fakes/telnyx_outbound.py) playing the person: the consult call created through TeXML,
its Ed25519-signed status callbacks and its briefing's `<Redirect>` reaching the dispatcher over the network,
at its PHONE_PUBLIC_URL, and the caller's TeXML call updated into the same conference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.phone.conftest import phone_env
from tests.phone.test_transfer import DESK, KEY, ended_transferred, telnyx_webhook_call, transfer_by_api
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call
SUMMARY = "Ana Ruiz, order 1042, wants a refund."


@pytest.fixture(scope="module")
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls()) as fake:  # the person is called from the number the caller reached
        yield fake


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, telnyx: FakeTelnyxCalls) -> Iterator[DispatcherProcess]:
    port = free_port()
    env = {**phone_env(tmp_path_factory.mktemp("calls")), **telnyx.env(),
           "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}", "PHONE_TRANSFER_TARGETS": DESK,
           "DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": METRICS_KEY}
    with run_dispatcher(tmp_path_factory.mktemp("telnyx-warm"), env, port=port) as running:
        yield running


@pytest.fixture
async def api(dispatcher: DispatcherProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher.base_url, timeout=60) as client:
        yield client


async def test_a_telnyx_call_s_person_is_briefed_then_joined_to_the_caller(
    api: httpx.AsyncClient, telnyx: FakeTelnyxCalls,
) -> None:
    call, at_telnyx, session_id = await telnyx_webhook_call(api, telnyx, telnyx.signer)
    asked = asyncio.create_task(transfer_by_api(api, session_id, call, at_telnyx,
                                                {"to": DESK, "mode": "warm", "summary": SUMMARY}))
    assert await FakeTelnyxCalls.eventually(lambda: bool(telnyx.placed), timeout=30)
    person = telnyx.placed[0]
    assert (person.one("To"), person.one("From")) == (DESK, at_telnyx.to)
    assert at_telnyx.twiml == []  # the caller is still with the bot while the person rings
    assert all(a.status_code == 204 for a in await telnyx.answer(person.sid))
    await telnyx.brief(person.sid)
    answer = await asyncio.wait_for(asked, 60)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["carrier"], answer.json()["carrier_status"]) == ("telnyx", "warm")
    assert person.said == [SUMMARY]
    assert {person.sid, at_telnyx.sid} in telnyx.conferences.values(), telnyx.conferences
    events = await ended_transferred(api, session_id)
    assert [(e["to"], e["mode"], e["carrier"]) for e in events if e["event"] == "transferred"] == [
        (DESK, "warm", "telnyx")]
