"""A live call handed to a person, cold: a real dispatcher, a real bot (tests/phone/echo_bot.py), a
Twilio-shaped stream (tests/fakes/carriers.py) that came in through the signed webhook, and a strict
fake of Twilio's Calls resource (tests/fakes/twilio.py) that the dispatcher updates; the same for a
Telnyx call (its signed TeXML webhook, tests/fakes/telnyx.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dispatcher.phone.signatures import twilio_signature
from tests.fakes.carriers import CarrierCall
from tests.fakes.server import serve
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import AUTH_TOKEN, FakeCall, FakeTwilio
from tests.phone.conftest import phone_env, wait_active_sessions
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call

KEY = "transfer-team-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {METRICS_KEY}"}
TEAM = {"Authorization": f"Bearer {KEY}"}
LINE, DESK = "+14155550142", "+14155550123"  # the number dialled for the bot's own transfer; the person's
STREAM_URL = re.compile(r'<Stream url="([^"]+)"')


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with serve(FakeTwilio()) as fake:
        yield fake


@pytest.fixture(scope="module")
def telnyx() -> Iterator[FakeTelnyx]:
    with serve(FakeTelnyx()) as fake:
        yield fake


TELNYX_SIGNER = Ed25519PrivateKey.generate()  # Telnyx's webhook key, as its portal would show the public half


@pytest.fixture(scope="module")
def dispatcher(
    tmp_path_factory: pytest.TempPathFactory, twilio: FakeTwilio, telnyx: FakeTelnyx,
) -> Iterator[tuple[DispatcherProcess, Path]]:
    reports = tmp_path_factory.mktemp("calls")
    env = phone_env(reports)
    env.update(twilio.env())
    env.update(telnyx.env())
    env["TELNYX_PUBLIC_KEY"] = base64.b64encode(
        TELNYX_SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    env.update({"DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": METRICS_KEY,
                "PHONE_TEST_TRANSFER_LINE": LINE, "PHONE_TEST_TRANSFER_TO": DESK,
                "PHONE_TRANSFER_TARGETS": f"{DESK},pbx.example.com"})
    env["LOCAL_BOT_ENV"] += ",PHONE_TEST_TRANSFER_LINE,PHONE_TEST_TRANSFER_TO"
    with run_dispatcher(tmp_path_factory.mktemp("transfer"), env) as running:
        yield running, reports


@pytest.fixture
async def api(dispatcher: tuple[DispatcherProcess, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(base_url=dispatcher[0].base_url, timeout=60) as client:
        yield client


_calls = iter(range(1, 1000))


async def webhook_call(
    api: httpx.AsyncClient, twilio: FakeTwilio, to: str = "+14155550199",
) -> tuple[CarrierCall, FakeCall]:
    """A call as Twilio places it: the signed webhook, then the stream its TwiML names, with the call's SID."""
    sid = f"CA{next(_calls):032x}"
    at_twilio = twilio.live_call(sid)  # before its stream: a bot that transfers at once finds it at Twilio
    at_twilio.to = to
    form = {"CallSid": sid, "AccountSid": twilio.account_sid, "From": "+14155550100", "To": to}
    url = str(api.base_url).rstrip("/") + "/phone/twilio"
    answer = await api.post("/phone/twilio", content=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(AUTH_TOKEN, url, list(form.items()))})
    assert answer.status_code == 200, answer.text
    match = STREAM_URL.search(answer.text)
    assert match is not None, answer.text
    call = CarrierCall("twilio", match.group(1).replace("&amp;", "&"), call_id=sid,
                       custom={"from_number": form["From"], "to_number": to})
    await call.open()
    await call.handshake()
    return call, at_twilio


async def answered_call(
    api: httpx.AsyncClient, twilio: FakeTwilio, to: str = "+14155550199",
) -> tuple[CarrierCall, FakeCall, str]:
    """A webhook's call once its bot answered (its greeting came back on the stream), and its session."""
    call, at_twilio = await webhook_call(api, twilio, to)
    return call, at_twilio, await session_of(api, call)


async def session_of(api: httpx.AsyncClient, call: CarrierCall) -> str:
    """The call's session, once its bot answers (the bot's greeting comes back on the stream)."""
    await call.next_bot_audio(timeout=60)
    for _ in range(300):
        listed = (await api.get("/sessions", params={"status": "active"}, headers=ADMIN)).json()["sessions"]
        ids = [s["session_id"] for s in listed]
        if ids:
            return str(ids[0])
        await asyncio.sleep(0.1)
    raise AssertionError("the call's session is not listed")


async def transfer_by_api(api: httpx.AsyncClient, session_id: str, call: CarrierCall, at_twilio: FakeCall,
                          body: dict[str, Any]) -> httpx.Response:
    """`POST /sessions/{id}/transfer` with an admin key, while Twilio ends the stream once it takes the TwiML."""
    ending = asyncio.create_task(twilio_ends_the_stream(at_twilio, call))
    answer = await api.post(f"/sessions/{session_id}/transfer", json=body, headers=ADMIN)
    await ending
    return answer


async def twilio_ends_the_stream(twilio_call: FakeCall, call: CarrierCall) -> None:
    """What Twilio does once the new TwiML takes over: `stop`, then the stream closes."""
    assert await FakeTwilio.eventually(twilio_call.redirected.is_set, timeout=30)
    await call.hang_up()


async def timeline(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/sessions/{session_id}/timeline", headers=ADMIN)).json()["events"])


async def ended_transferred(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """The session's timeline once its machine ended with the stream, after checking that GET /sessions
    lists it ended as `transferred`."""
    assert await wait_active_sessions(api, 0, timeout=60) == 0  # the bot's side ended with the stream
    for _ in range(300):
        listed = (await api.get("/sessions", params={"status": "ended"}, headers=ADMIN)).json()["sessions"]
        mine = [s for s in listed if s["session_id"] == session_id]
        if mine:
            assert mine[0].get("end_reason") == "transferred", mine
            return await timeline(api, session_id)
        await asyncio.sleep(0.1)
    raise AssertionError(f"session {session_id} is not listed ended")


async def test_a_transfer_by_the_api_dials_the_person_and_ends_the_session_as_transferred(
    api: httpx.AsyncClient, twilio: FakeTwilio,
) -> None:
    call, at_twilio, session_id = await answered_call(api, twilio)
    answer = await transfer_by_api(api, session_id, call, at_twilio, {"to": DESK, "mode": "cold"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "transferred" and answer.json()["carrier_status"] == "in-progress"
    assert at_twilio.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']
    update = twilio.calls_to("POST", at_twilio.sid)[-1]
    assert update.headers["content-type"] == "application/x-www-form-urlencoded"
    events = await ended_transferred(api, session_id)
    transferred = [e for e in events if e["event"] == "transferred"]
    assert transferred and transferred[0]["to"] == DESK and transferred[0]["mode"] == "cold"
    assert transferred[0]["carrier_status"] == "in-progress"
    assert not [e for e in events if e["event"] == "caller_hung_up"], events  # Twilio's stop was the transfer


async def test_the_bots_own_transfer_call_hands_its_call_over_with_no_carrier_credential(
    dispatcher: tuple[DispatcherProcess, Path], api: httpx.AsyncClient, twilio: FakeTwilio,
) -> None:
    reports = dispatcher[1]
    call, at_twilio, session_id = await answered_call(api, twilio, to=LINE)  # the bot transfers these
    await twilio_ends_the_stream(at_twilio, call)
    assert at_twilio.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']
    answer_file = reports / f"{session_id}.transfer.json"
    assert await FakeTwilio.eventually(answer_file.exists, timeout=30)
    assert json.loads(answer_file.read_text())["status"] == "transferred"
    events = await ended_transferred(api, session_id)
    assert [e["to"] for e in events if e["event"] == "transferred"] == [DESK]


async def test_an_update_whose_answer_never_came_is_read_back_and_not_sent_twice(
    api: httpx.AsyncClient, twilio: FakeTwilio,
) -> None:
    call, at_twilio, session_id = await answered_call(api, twilio)
    lost = twilio.lose_answer(at_twilio.sid)  # Twilio takes the update; its answer never comes back
    asking = asyncio.create_task(api.post(f"/sessions/{session_id}/transfer",
                                          json={"to": "sip:desk@pbx.example.com"}, headers=ADMIN))
    await twilio_ends_the_stream(at_twilio, call)
    answer = await asking  # the update timed out, the call was read back once its stream closed
    lost.set()
    assert answer.status_code == 200, answer.text
    assert len(twilio.calls_to("GET", at_twilio.sid)) >= 1
    assert len(twilio.calls_to("POST", at_twilio.sid)) == 1  # reconciled, never sent again blind
    assert at_twilio.twiml == ['<Response><Dial timeLimit="3600"><Sip>sip:desk@pbx.example.com</Sip></Dial></Response>']
    events = await timeline(api, session_id)
    assert [e.get("reconciled") for e in events if e["event"] == "transferred"] == [True]


async def test_a_throttled_update_is_retried_with_backoff(api: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    call, at_twilio, session_id = await answered_call(api, twilio)
    twilio.fail(429, retry_after=0.2, method="POST", path_contains=at_twilio.sid)
    answer = await transfer_by_api(api, session_id, call, at_twilio, {"to": DESK})
    assert answer.status_code == 200, answer.text
    assert len(twilio.calls_to("POST", at_twilio.sid)) == 2  # the 429, then the update


async def test_refusals_change_nothing(api: httpx.AsyncClient, twilio: FakeTwilio) -> None:
    call, at_twilio, session_id = await answered_call(api, twilio)
    path = f"/sessions/{session_id}/transfer"

    for bad in ("4155550123", "+0123", "sip:no-host", "<Play>x</Play>", None, "+1" + "2" * 20):
        answer = await api.post(path, json={"to": bad}, headers=ADMIN)
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_target"), bad
    for off_list in ("+882123456789", "sip:+19005550100@203.0.113.7:5080"):  # well formed, not on the list
        answer = await api.post(path, json={"to": off_list}, headers=ADMIN)
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "target_not_allowed"), off_list
    # The webhook's call belongs to the dispatcher: a team's key does not reach it.
    assert (await api.post(path, json={"to": DESK}, headers=TEAM)).status_code == 404
    # Warm on Twilio needs the address its call to the person reports to (this dispatcher has none); a
    # summary is bounded before anything is looked up.
    warm = await api.post(path, json={"to": DESK, "mode": "warm"}, headers=ADMIN)
    assert (warm.status_code, warm.json()["error"]["code"]) == (409, "transfer_not_configured"), warm.text
    assert "PHONE_PUBLIC_URL" in warm.json()["error"]["message"]
    long = await api.post(path, json={"to": DESK, "mode": "warm", "summary": "x" * 301}, headers=ADMIN)
    assert (long.status_code, long.json()["error"]["code"]) == (422, "invalid_summary"), long.text
    assert not twilio.calls_to("POST", at_twilio.sid)  # nothing was sent to Twilio

    at_twilio.status = "completed"  # the caller hung up at Twilio's end an instant ago
    over = await api.post(path, json={"to": DESK}, headers=ADMIN)
    assert (over.status_code, over.json()["error"]["code"]) == (409, "call_over"), over.text
    assert at_twilio.twiml == []
    await call.hang_up()

    # A stream opened with a POST /start token names a call no signature vouches for: the team's own
    # calls, refused for what they are.
    for carrier, code in (("twilio", "call_not_verified"), ("telnyx", "call_not_verified"),
                          ("plivo", "call_not_verified")):
        start = (await api.post("/start", json={"transport": carrier}, headers=TEAM)).json()
        own = CarrierCall(carrier, f"{start['wsUrl']}/{start['token']}", call_id="CA" + "f" * 32)
        await own.open()
        await own.handshake()
        await own.next_bot_audio(timeout=60)
        refused = await api.post(f"/sessions/{start['sessionId']}/transfer", json={"to": DESK}, headers=TEAM)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, code), refused.text
        await own.hang_up()
    assert await wait_active_sessions(api, 0, timeout=60) == 0


async def telnyx_webhook_call(api: httpx.AsyncClient, telnyx: FakeTelnyx,
                              signer: Ed25519PrivateKey = TELNYX_SIGNER) -> tuple[CarrierCall, FakeCall, str]:
    """A call as Telnyx answers it with TeXML: the signed webhook (by `signer`, the key whose public half is
    TELNYX_PUBLIC_KEY), the stream its TeXML names (whose `start` carries the call's control id), then the bot's
    greeting; its call at the fake, its session."""
    sid = f"v3:telnyx-call-{next(_calls)}_x"
    body = urlencode({"AccountSid": telnyx.account_sid, "CallSid": sid, "From": "+14155550100",
                      "To": "+14155550199", "CallStatus": "ringing"}).encode()
    sent = str(int(time.time()))
    signature = base64.b64encode(signer.sign(sent.encode() + b"|" + body)).decode()
    answer = await api.post("/phone/telnyx", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "telnyx-signature-ed25519": signature,
        "telnyx-timestamp": sent})
    assert answer.status_code == 200, answer.text
    match = STREAM_URL.search(answer.text)
    assert match is not None, answer.text
    call = CarrierCall("telnyx", match.group(1).replace("&amp;", "&"), call_id=sid)
    await call.open()
    await call.handshake()
    at_telnyx = telnyx.live_call(sid)
    return call, at_telnyx, await session_of(api, call)


async def test_a_telnyx_call_is_handed_over_with_texml_and_ends_the_session_as_transferred(
    api: httpx.AsyncClient, telnyx: FakeTelnyx,
) -> None:
    call, at_telnyx, session_id = await telnyx_webhook_call(api, telnyx)
    answer = await transfer_by_api(api, session_id, call, at_telnyx, {"to": "sip:desk@pbx.example.com"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["carrier"], answer.json()["carrier_status"]) == ("telnyx", "in-progress")
    assert at_telnyx.twiml == ['<Response><Dial timeLimit="3600"><Sip>sip:desk@pbx.example.com</Sip></Dial></Response>']
    update = telnyx.calls_to("POST", at_telnyx.sid)[-1]
    assert update.path == f"/v2/texml/Accounts/{telnyx.account_sid}/Calls/{at_telnyx.sid}"
    events = await ended_transferred(api, session_id)
    transferred = [e for e in events if e["event"] == "transferred"]
    assert transferred and transferred[0]["carrier"] == "telnyx" and transferred[0]["to"] == "sip:desk@pbx.example.com"
    assert not [e for e in events if e["event"] == "caller_hung_up"], events  # Telnyx's stop was the transfer
