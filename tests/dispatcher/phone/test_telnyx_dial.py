"""`POST /calls` through Telnyx's TeXML Calls API: the dispatcher in-process, Telnyx a strict fake on a real
port (tests/fakes/telnyx_outbound.py) whose Ed25519-signed callbacks reach the app through its ASGI
transport. The create's JSON, the outcomes (one implementation with Twilio's calls), answering machines,
Telnyx's refusals, the account's pace, and the settings a Telnyx call needs."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.phone.placed_calls import calls_allowed, events, outcomes, placed_once_though_unanswered
from tests.fakes.server import serve
from tests.fakes.telnyx import ACCOUNT_SID, API_KEY
from tests.fakes.telnyx_outbound import APPLICATION_SID, FakeTelnyxCalls
from tests.fakes.twilio_outbound import PlacedCall

PUBLIC = "https://calls.example.com"
CALL = {"to": "+14155550100", "from": "+14155550199", "carrier": "telnyx"}


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


def app_for(telnyx: FakeTelnyxCalls, **env: str) -> Any:
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": PUBLIC, "TELNYX_CALLS_PER_SECOND": "50",
           **calls_allowed("telnyx", ("+14155550199", "+14155550111")), **env}  # the second: Telnyx's refusal
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    telnyx.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return app


@pytest.fixture
async def api(telnyx: FakeTelnyxCalls) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(telnyx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.state.voicefleet.aclose()


async def placed(api: httpx.AsyncClient, telnyx: FakeTelnyxCalls, **change: Any) -> tuple[str, PlacedCall]:
    before = len(telnyx.placed)
    answer = await api.post("/calls", json={**CALL, **change})
    assert answer.status_code == 201, answer.text
    assert len(telnyx.placed) == before + 1
    return answer.json()["session_id"], telnyx.placed[-1]


async def test_a_telnyx_call_is_created_as_json_with_its_texml_stream_signed_callbacks_and_async_amd(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    answer = await api.post("/calls", json=CALL)
    assert answer.status_code == 201, answer.text
    shown = answer.json()
    assert shown["carrier"] == "telnyx" and shown["status"] == "starting" and shown["call_sid"] is None
    sent, call = telnyx.documents[0], telnyx.placed[0]
    assert (sent["ApplicationSid"], sent["To"], sent["From"], sent["Timeout"]) == (
        APPLICATION_SID, CALL["to"], CALL["from"], 30)
    assert call.stream_url.startswith("wss://calls.example.com/ws/telnyx/")
    assert 'bidirectionalMode="rtp"' in sent["Texml"]
    callbacks = f"{PUBLIC}/phone/telnyx/calls/{shown['session_id']}/"
    assert sent["StatusCallback"].startswith(callbacks) and sent["AsyncAmdStatusCallback"].startswith(callbacks)
    assert sent["StatusCallbackEvent"] == "initiated ringing answered completed"
    assert (sent["MachineDetection"], sent["AsyncAmd"]) == ("Enable", True)  # the default: hang_up
    assert API_KEY not in sent["Texml"]


@pytest.mark.parametrize(("status", "outcome"), [("busy", "busy"), ("no-answer", "no_answer"),
                                                 ("failed", "failed"), ("canceled", "canceled")])
async def test_a_telnyx_call_never_answered_ends_its_session_with_the_outcome(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls, status: str, outcome: str) -> None:
    session_id, call = await placed(api, telnyx)
    answers = await telnyx.finish(call.sid, status)
    assert answers and all(a.status_code == 204 for a in answers), [a.text for a in answers]
    timeline = await events(api, session_id)
    assert outcomes(timeline) == [("call_outcome", outcome), ("ended", outcome)], timeline
    assert timeline[0]["event"] == "requested" and timeline[-1]["call_sid"] == call.sid
    assert timeline[-1]["carrier"] == "telnyx"


async def test_an_answered_telnyx_call_records_answered_with_the_sid_its_callback_signed(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    session_id, call = await placed(api, telnyx)
    assert all(a.status_code == 204 for a in await telnyx.answer(call.sid))
    timeline = await events(api, session_id)
    assert outcomes(timeline) == [("call_outcome", "answered")]
    assert [e["call_sid"] for e in timeline if e["event"] == "call_outcome"] == [call.sid]


def signed(telnyx: FakeTelnyxCalls, body: bytes, sent: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if sent is None else sent)
    signature = base64.b64encode(telnyx._key.sign(stamp.encode() + b"|" + body)).decode()
    return {"Content-Type": "application/x-www-form-urlencoded", "telnyx-signature-ed25519": signature,
            "telnyx-timestamp": stamp}


async def test_a_callback_not_signed_by_telnyx_old_elsewhere_another_account_s_or_replayed_is_refused(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    session_id, call = await placed(api, telnyx)
    path = (call.one("StatusCallback") or "").removeprefix(PUBLIC)
    body = urlencode({"AccountSid": ACCOUNT_SID, "CallSid": call.sid, "CallStatus": "busy"}).encode()
    forged = {**signed(telnyx, body), "telnyx-signature-ed25519": base64.b64encode(b"x" * 64).decode()}
    assert (await api.post(path, content=body, headers=forged)).status_code == 403
    stale = await api.post(path, content=body, headers=signed(telnyx, body, int(time.time()) - 3600))
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "signature_expired"
    other = path.replace(session_id, session_id[:-1] + ("a" if session_id[-1] != "a" else "b"))
    elsewhere = await api.post(other, content=body, headers=signed(telnyx, body))
    assert elsewhere.status_code == 403, elsewhere.text  # another session's URL: its MAC does not match
    stranger = body.replace(ACCOUNT_SID.encode(), b"00000000-0000-0000-0000-000000000000")
    assert (await api.post(path, content=stranger, headers=signed(telnyx, stranger))).status_code == 400
    headers = signed(telnyx, body)
    assert (await api.post(path, content=body, headers=headers)).status_code == 204
    assert (await api.post(path, content=body, headers=headers)).status_code == 403  # the same again
    assert outcomes(await events(api, session_id)) == [("call_outcome", "busy"), ("ended", "busy")]


async def test_a_signed_body_is_taken_once_across_every_telnyx_route(api: httpx.AsyncClient,
                                                                     telnyx: FakeTelnyxCalls) -> None:
    """Telnyx signs the timestamp and body, never the URL: a placed call's callback taken at its own URL is
    spent at `POST /phone/telnyx` too, which would otherwise answer it with a fresh stream token."""
    _, call = await placed(api, telnyx)
    path = (call.one("StatusCallback") or "").removeprefix(PUBLIC)
    body = urlencode({"AccountSid": ACCOUNT_SID, "CallSid": call.sid, "CallStatus": "ringing"}).encode()
    headers = signed(telnyx, body)
    assert (await api.post(path, content=body, headers=headers)).status_code == 204
    again = await api.post("/phone/telnyx", content=body, headers=headers)
    assert again.status_code == 403 and again.json()["error"]["code"] == "replayed", again.text


async def test_a_placed_call_s_callbacks_are_refused_as_a_new_call(api: httpx.AsyncClient,
                                                                   telnyx: FakeTelnyxCalls) -> None:
    """A status or answering-machine callback (`CallbackSource`, `AnsweredBy`) is never a call's first
    request: `POST /phone/telnyx` refuses it before it is spent, unanswered by any stream."""
    _, call = await placed(api, telnyx)
    for extra in ({"CallbackSource": "call-progress-events", "CallStatus": "answered"}, {"AnsweredBy": "human"}):
        body = urlencode({"AccountSid": ACCOUNT_SID, "CallSid": call.sid, **extra}).encode()
        answer = await api.post("/phone/telnyx", content=body, headers=signed(telnyx, body))
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "not_a_new_call", answer.text
        assert "Stream" not in answer.text


async def test_a_session_s_callbacks_name_the_call_its_first_callback_named(api: httpx.AsyncClient,
                                                                            telnyx: FakeTelnyxCalls) -> None:
    """The URL's MAC binds the session, never the call: a signed body of call A posted at session B's URL
    (after B's own first callback) is refused, and B goes on."""
    a, call_a = await placed(api, telnyx)
    b, call_b = await placed(api, telnyx)
    assert len(await telnyx.answer(call_b.sid)) == 3  # B's initiated, ringing, answered: B is bound to its call
    body = urlencode({"AccountSid": ACCOUNT_SID, "CallSid": call_a.sid, "CallStatus": "busy",
                      "CallbackSource": "call-progress-events"}).encode()
    at_b = await api.post((call_b.one("StatusCallback") or "").removeprefix(PUBLIC), content=body,
                          headers=signed(telnyx, body))
    assert at_b.status_code == 403 and at_b.json()["error"]["code"] == "callback_forged", at_b.text
    assert outcomes(await events(api, b)) == [("call_outcome", "answered")]
    assert all(answer.status_code == 204 for answer in await telnyx.finish(call_a.sid, "busy"))  # A's own: taken
    assert outcomes(await events(api, a)) == [("call_outcome", "busy"), ("ended", "busy")]


async def test_a_machine_with_hang_up_ends_the_call_at_telnyx_and_records_voicemail(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    session_id, call = await placed(api, telnyx)
    await telnyx.answer(call.sid)
    answer = await telnyx.detect(call.sid, "machine_start")
    assert answer is not None and answer.status_code == 204, answer and answer.text
    assert call.status == "completed" and call.twiml == []  # ended by the update Telnyx's TeXML API takes
    assert telnyx.calls_to("POST", f"/Calls/{call.sid}")
    timeline = await events(api, session_id)
    assert outcomes(timeline) == [("call_outcome", "answered"), ("call_outcome", "voicemail"), ("ended", "voicemail")]


async def test_a_machine_with_flag_hands_the_telnyx_call_to_a_bot_told_who_answered(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    session_id, call = await placed(api, telnyx, voicemail="flag", body={"campaign": "renewals"})
    await telnyx.answer(call.sid)
    answer = await telnyx.detect(call.sid, "machine_start")
    assert answer is not None and answer.status_code == 204, answer and answer.text
    assert call.status == "in-progress" and len(call.twiml) == 1
    token = call.twiml[0].split("/ws/telnyx/")[1].split('"')[0]
    assert token not in call.stream_url  # a new stream, with a token of its own
    grant = api.app.state.voicefleet.phone.tokens.check(token, "telnyx")  # type: ignore[attr-defined]
    assert grant.body["answered_by"] == "machine_start" and grant.body["body"] == {"campaign": "renewals"}
    timeline = await events(api, session_id)
    assert outcomes(timeline)[-2:] == [("call_outcome", "voicemail"), ("ended", "voicemail")]


async def test_a_call_telnyx_refuses_is_422_with_its_words_and_nothing_is_placed(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    answer = await api.post("/calls", json={**CALL, "from": "+14155550111"}, headers={"Idempotency-Key": "refused"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "telnyx_refused_call" and "10015" in answer.json()["error"]["message"]
    assert telnyx.placed == []


async def test_telnyx_s_429_is_answered_429_with_retry_after_and_not_retried_within_its_wait(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls) -> None:
    telnyx.create_per_second = 1  # the fake's rate below the dispatcher's setting: Telnyx refuses the second
    await placed(api, telnyx)
    refused = await api.post("/calls", json=CALL)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "telnyx_throttled" and int(refused.headers["Retry-After"]) >= 1
    assert len(telnyx.calls_to("POST", f"/v2/texml/Accounts/{ACCOUNT_SID}/Calls")) == 2


async def test_telnyx_calls_are_paced_at_the_account_s_calls_a_second(telnyx: FakeTelnyxCalls) -> None:
    """Three calls at once, the account at 2 a second: the n-th create Telnyx saw came at least n half-seconds
    after the first (less a quarter second of slack; unpaced, all three come within milliseconds)."""
    app = app_for(telnyx, TELNYX_CALLS_PER_SECOND="2")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answers = await asyncio.gather(*(client.post("/calls", json=CALL) for _ in range(3)))
    await app.state.voicefleet.aclose()
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    since_first = [at - telnyx.created_at[0] for at in telnyx.created_at]
    assert all(since >= 0.5 * n - 0.25 for n, since in enumerate(since_first)), since_first


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 505, 520, 200, 201])  # 2xx: a proxy's page
async def test_a_telnyx_create_answered_5xx_is_never_sent_again_and_its_key_answers_with_the_same_session(
        api: httpx.AsyncClient, telnyx: FakeTelnyxCalls, status: int) -> None:
    """A 5xx does not prove that Telnyx queued no call: the outcome is unknown, as a create with no answer."""
    telnyx.queued_but_answered = status
    await placed_once_though_unanswered(api, CALL, status, "telnyx_unanswered")
    assert len(telnyx.calls_to("POST", f"/v2/texml/Accounts/{ACCOUNT_SID}/Calls")) == 1 and len(telnyx.placed) == 1


@pytest.mark.parametrize(("drop", "named"), [("TELNYX_APPLICATION_SID", "TELNYX_APPLICATION_SID"),
                                             ("TELNYX_PUBLIC_KEY", "TELNYX_PUBLIC_KEY"),
                                             ("PHONE_PUBLIC_URL", "PHONE_PUBLIC_URL")])
async def test_a_telnyx_call_without_its_settings_says_which_to_set_and_nothing_is_asked_of_telnyx(
        telnyx: FakeTelnyxCalls, drop: str, named: str) -> None:
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": PUBLIC}
    env.pop(drop)
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/calls", json=CALL)
        mixed = await client.post("/calls", json={**CALL, "trunk": "far"})
    await app.state.voicefleet.aclose()
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "telnyx_not_configured", answer.text
    assert named in answer.json()["error"]["message"]
    assert mixed.status_code == 422 and mixed.json()["error"]["code"] == "trunk_not_used"
    assert telnyx.placed == []


def test_a_telnyx_account_that_is_not_its_uuid_stops_the_dispatcher_naming_the_setting(
        telnyx: FakeTelnyxCalls) -> None:
    with pytest.raises(SettingsError, match="TELNYX_ACCOUNT_SID"):
        app_for(telnyx, TELNYX_ACCOUNT_SID="../../v2/calls")


@pytest.mark.parametrize(("change", "detail"), [
    ({"Colour": "blue"}, "Unknown parameters"), ({"AsyncAmd": "true"}, "AsyncAmd"), ({"Timeout": 3}, "Timeout"),
    ({"ApplicationSid": "1"}, "ApplicationSid"), ({"StatusCallbackEvent": "answered,completed"}, "StatusCallbackEvent"),
    ({"Texml": "<Hangup/>"}, "Texml")])
async def test_the_fake_refuses_a_create_as_telnyx_does(telnyx: FakeTelnyxCalls, change: dict[str, Any],
                                                      detail: str) -> None:
    """The fake is never more lenient than Telnyx's documented create: what the dispatcher sends is held to it."""
    document = {"ApplicationSid": APPLICATION_SID, "To": "+14155550100", "From": "+14155550199",
                "Texml": "<Response/>"}
    path = f"/v2/texml/Accounts/{ACCOUNT_SID}/Calls"
    async with httpx.AsyncClient(base_url=telnyx.url, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        answer = await client.post(path, json={**document, **change})
        form = await client.post(path, data=document)
        good = await client.post(path, json=document)
    assert answer.status_code == 422 and detail in answer.json()["errors"][0]["detail"], answer.text
    assert form.status_code == 422  # JSON, not the update's form
    assert good.status_code == 200 and good.json() == {"from": "+14155550199", "to": "+14155550100",
                                                       "status": "queued"}
