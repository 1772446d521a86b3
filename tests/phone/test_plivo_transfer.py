"""A Plivo call handed to a person, cold: a real dispatcher, a real bot (tests/phone/echo_bot.py), a
Plivo stream (tests/fakes/carriers.py) that came in through Plivo's signed answer URL, and a strict fake
of Plivo's Call resource (tests/fakes/plivo.py) that the dispatcher transfers, which then fetches the
dispatcher's one-time URL, signed, for the `<Dial>` it runs."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.carriers import CarrierCall
from tests.fakes.plivo import AUTH_TOKEN, FakePlivo, PlivoCall, v3_signature
from tests.fakes.server import serve
from tests.phone.conftest import phone_env, wait_active_sessions
from tests.phone.test_transfer import ended_transferred, session_of, timeline
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

KEY = "plivo-transfer-team-key-0123456789"
ADMIN = {"Authorization": f"Bearer {METRICS_KEY}"}
TEAM = {"Authorization": f"Bearer {KEY}"}
DESK = "+14155550123"  # the person's
STREAM = re.compile(r"<Stream[^>]*>([^<]+)</Stream>")
DIAL_DESK = f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>'


@pytest.fixture(scope="module")
def plivo() -> Iterator[FakePlivo]:
    with serve(FakePlivo()) as fake:
        yield fake


@contextmanager
def plivo_dispatcher(tmp_path_factory: pytest.TempPathFactory, plivo: FakePlivo,
                     **extra: str) -> Iterator[tuple[DispatcherProcess, Path]]:
    reports = tmp_path_factory.mktemp("calls")
    port = free_port()
    env = phone_env(reports) | plivo.env()
    env.update({"DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": METRICS_KEY,
                "PHONE_PUBLIC_URL": f"http://127.0.0.1:{port}",  # where Plivo fetches the transfer's XML
                "PHONE_TRANSFER_TARGETS": f"{DESK},pbx.example.com", **extra})
    env["LOCAL_BOT_ENV"] += "," + ",".join(extra)
    with run_dispatcher(tmp_path_factory.mktemp("plivo-transfer"), env, port=port) as running:
        yield running, reports


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory, plivo: FakePlivo) -> Iterator[tuple[DispatcherProcess, Path]]:
    with plivo_dispatcher(tmp_path_factory, plivo) as running:
        yield running


@pytest.fixture
async def api(dispatcher: tuple[DispatcherProcess, Path], plivo: FakePlivo) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher[0].base_url, timeout=60) as client:
        yield client
    plivo.reset_knobs()


def signed(url: str, form: dict[str, str]) -> dict[str, str]:
    nonce = secrets.token_hex(10)
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": v3_signature(AUTH_TOKEN, url, nonce, form)}


async def plivo_call(api: httpx.AsyncClient, plivo: FakePlivo, to: str = "+14155550199",
                     ) -> tuple[CarrierCall, PlivoCall, str]:
    """A call as Plivo answers it: the signed answer URL, the stream its XML names, the bot's greeting."""
    call_uuid = str(uuid.uuid4())
    form = {"CallUUID": call_uuid, "From": "+14155550100", "To": to, "CallStatus": "ringing", "Direction": "inbound"}
    answer = await api.post("/phone/plivo", content=urlencode(form),
                            headers=signed(str(api.base_url).rstrip("/") + "/phone/plivo", form))
    assert answer.status_code == 200, answer.text
    match = STREAM.search(answer.text)
    assert match is not None, answer.text
    at_plivo = plivo.live_call(call_uuid, to_number=to)
    call = CarrierCall("plivo", match.group(1).replace("&amp;", "&"), call_id=call_uuid, custom={"to_number": to})
    await call.open()
    await call.handshake()
    return call, at_plivo, await session_of(api, call)


async def plivo_ends_the_stream(at_plivo: PlivoCall, call: CarrierCall) -> None:
    """What Plivo does once the call runs its new XML: the stream closes."""
    assert await FakePlivo.eventually(at_plivo.redirected.is_set, timeout=30)
    await call.hang_up()


async def transfer_by_api(api: httpx.AsyncClient, session_id: str, call: CarrierCall, at_plivo: PlivoCall,
                          body: dict[str, Any]) -> httpx.Response:
    ending = asyncio.create_task(plivo_ends_the_stream(at_plivo, call))
    answer = await api.post(f"/sessions/{session_id}/transfer", json=body, headers=ADMIN)
    await ending
    return answer


async def test_a_plivo_call_is_handed_over_through_a_one_time_url_and_ends_the_session_as_transferred(
    api: httpx.AsyncClient, plivo: FakePlivo,
) -> None:
    call, at_plivo, session_id = await plivo_call(api, plivo)
    answer = await transfer_by_api(api, session_id, call, at_plivo, {"to": DESK, "mode": "cold"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["carrier"], answer.json()["carrier_status"]) == ("plivo", "call transferred")
    assert at_plivo.xml == [DIAL_DESK]
    (sent,) = plivo.calls_to("POST", at_plivo.uuid)
    assert sent.path == f"/v1/Account/{plivo.auth_id}/Call/{at_plivo.uuid}/"
    ask = sent.json()
    assert (ask["legs"], ask["aleg_method"]) == ("aleg", "POST")
    assert ask["aleg_url"].startswith(str(api.base_url).rstrip("/") + "/phone/plivo/transfer/")
    events = await ended_transferred(api, session_id)
    transferred = [e for e in events if e["event"] == "transferred"]
    assert transferred and (transferred[0]["carrier"], transferred[0]["to"]) == ("plivo", DESK)
    assert not [e for e in events if e["event"] == "caller_hung_up"], events  # the close was the transfer

    # The fetch Plivo made, sent again (its own retry, or a capture replayed): the same XML, which dials
    # only for Plivo, which fetched it; a third fetch of the ticket streams the call to a bot, once.
    url, form, headers = at_plivo.fetches[0]
    path = url.removeprefix(str(api.base_url).rstrip("/"))
    repeat = await api.post(path, content=urlencode(form), headers=headers)
    assert (repeat.status_code, repeat.text.split("?>", 1)[-1].strip()) == (200, DIAL_DESK), repeat.text
    third = await api.post(path, content=urlencode(form), headers=(again := signed(url, form)))
    assert third.status_code == 200 and "<Dial" not in third.text and STREAM.search(third.text), third.text
    replay = await api.post(path, content=urlencode(form), headers=again)
    assert (replay.status_code, replay.json()["error"]["code"]) == (403, "replayed"), replay.text
    # A URL the dispatcher did not mint (its MAC changed), though Plivo's signature is good; an unsigned one.
    forged = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    refused = await api.post(forged, content=urlencode(form), headers=signed(url[: -len(path)] + forged, form))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "callback_forged"), refused.text
    unsigned = await api.post(path, content=urlencode(form), headers={**headers, "X-Plivo-Signature-V3": "x"})
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (403, "signature_invalid"), unsigned.text


async def test_the_bots_own_transfer_call_hands_its_plivo_call_over(
    tmp_path_factory: pytest.TempPathFactory, plivo: FakePlivo,
) -> None:
    # Pipecat hands a Plivo bot no dialled number: this dispatcher's echo bot transfers every Plivo call.
    with plivo_dispatcher(tmp_path_factory, plivo, PHONE_TEST_TRANSFER_EVERY="plivo",
                          PHONE_TEST_TRANSFER_TO=DESK) as (running, reports):
        async with api_client(base_url=running.base_url, timeout=60) as api:
            call, at_plivo, session_id = await plivo_call(api, plivo)
            await plivo_ends_the_stream(at_plivo, call)
            assert at_plivo.xml == [DIAL_DESK]
            answer_file = reports / f"{session_id}.transfer.json"
            assert await FakePlivo.eventually(answer_file.exists, timeout=30)
            assert json.loads(answer_file.read_text())["status"] == "transferred"
            events = await ended_transferred(api, session_id)
    assert [(e["carrier"], e["to"]) for e in events if e["event"] == "transferred"] == [("plivo", DESK)]


async def test_a_transfer_answered_5xx_is_read_back_never_sent_twice_and_a_429_is_retried(
    api: httpx.AsyncClient, plivo: FakePlivo,
) -> None:
    call, at_plivo, session_id = await plivo_call(api, plivo)
    plivo.answer_done_transfer_with(at_plivo.uuid, 502)  # done, then a gateway's 502
    answer = await transfer_by_api(api, session_id, call, at_plivo, {"to": "sip:desk@pbx.example.com"})
    assert answer.status_code == 200, answer.text
    assert len(plivo.calls_to("POST", at_plivo.uuid)) == 1  # reconciled, never sent again blind
    assert plivo.calls_to("GET", at_plivo.uuid)[-1].query == {"status": "live"}
    assert at_plivo.xml == ['<Response><Dial timeLimit="3600"><User>sip:desk@pbx.example.com</User></Dial></Response>']
    assert [e.get("reconciled") for e in await timeline(api, session_id) if e["event"] == "transferred"] == [True]

    call, at_plivo, session_id = await plivo_call(api, plivo)
    plivo.fail(429, retry_after=0.2, method="POST", path_contains=at_plivo.uuid)
    answer = await transfer_by_api(api, session_id, call, at_plivo, {"to": DESK})
    assert answer.status_code == 200, answer.text
    assert len(plivo.calls_to("POST", at_plivo.uuid)) == 2  # the 429, then the transfer
    assert await wait_active_sessions(api, 0, timeout=60) == 0


async def test_refusals_plivos_404_is_call_over_and_an_unsigned_stream_is_not_verified(
    api: httpx.AsyncClient, plivo: FakePlivo,
) -> None:
    call, at_plivo, session_id = await plivo_call(api, plivo)
    path = f"/sessions/{session_id}/transfer"
    off_list = await api.post(path, json={"to": "+882123456789"}, headers=ADMIN)
    assert (off_list.status_code, off_list.json()["error"]["code"]) == (403, "target_not_allowed"), off_list.text
    assert not plivo.calls_to("POST", at_plivo.uuid)  # nothing was sent to Plivo
    at_plivo.live = False  # the caller hung up at Plivo's end an instant ago
    over = await api.post(path, json={"to": DESK}, headers=ADMIN)
    assert (over.status_code, over.json()["error"]["code"]) == (409, "call_over"), over.text
    assert at_plivo.xml == [] and not at_plivo.fetches
    await call.hang_up()

    # A stream opened with a POST /start token names a call no signature vouches for.
    start = (await api.post("/start", json={"transport": "plivo"}, headers=TEAM)).json()
    own = CarrierCall("plivo", f"{start['wsUrl']}/{start['token']}", call_id=str(uuid.uuid4()))
    await own.open()
    await own.handshake()
    await own.next_bot_audio(timeout=60)
    refused = await api.post(f"/sessions/{start['sessionId']}/transfer", json={"to": DESK}, headers=TEAM)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "call_not_verified"), refused.text
    await own.hang_up()
    assert await wait_active_sessions(api, 0, timeout=60) == 0
