"""Meta's calling webhook at the dispatcher, its bots played by the stand-in (tests/dispatcher/standin_bot.py)
and Meta by its fake (tests/fakes/whatsapp.py): the verification, the signature (nothing starts
without it), one session per call however often Meta delivers its `connect`, and calls refused cleanly
(rejected at Meta, never left ringing). The real bot and media: tests/phone/test_whatsapp_call.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.observability.whatsapp_call import whatsapp_of
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, VERIFY_TOKEN, FakeWhatsApp
from tests.support.dispatcher_server import InProcess, in_process

# An audio offer as WhatsApp's media servers send one (its candidates name no one here: the stand-in
# bot answers it without media).
OFFER = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
         "a=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
         "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n")


@dataclass
class Meta:
    fake: FakeWhatsApp
    dispatcher: InProcess
    launches: list[str]


@asynccontextmanager
async def dispatcher(fake: FakeWhatsApp, numbers: str = PHONE_NUMBER_ID,
                     keys: dict[str, str] | None = None) -> AsyncIterator[Meta]:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    launches: list[str] = []
    launch = machines.launch

    async def counted(spec: LaunchSpec) -> LaunchResult:
        launches.append(spec.session_id)
        return await launch(spec)

    machines.launch = counted  # type: ignore[method-assign]
    env = {**fake.env(numbers), **(keys or {})}
    app = create_app(Settings.from_env(env) if keys else Settings(), env=env, machines=machines, rooms=None)
    async with in_process(app) as running:
        yield Meta(fake, running, launches)


@pytest.fixture
async def meta(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Meta]:
    monkeypatch.setenv("STANDIN_MODE", "serve")
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake) as running:
            yield running


async def post(meta: Meta, webhook: tuple[bytes, dict[str, str]]) -> tuple[int, dict[str, object]]:
    body, headers = webhook
    answer = await meta.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)
    return answer.status_code, answer.json()


async def settled(meta: Meta) -> None:
    calls = meta.dispatcher.state.whatsapp
    assert calls is not None
    await calls.settled()


async def test_meta_verifying_the_webhook_gets_its_challenge_back(meta: Meta) -> None:
    answer = await meta.dispatcher.client.get("/phone/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert (answer.status_code, answer.text) == (200, "1158201444")


async def test_a_verification_with_another_token_is_refused(meta: Meta) -> None:
    answer = await meta.dispatcher.client.get("/phone/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": "guessed", "hub.challenge": "1158201444"})
    assert answer.status_code == 403
    assert "WHATSAPP_VERIFY_TOKEN" in answer.json()["error"]["message"]


async def test_an_unsigned_connect_is_401_and_starts_nothing(meta: Meta) -> None:
    body, headers = meta.fake.connect_webhook(meta.fake.ring(OFFER))
    del headers["X-Hub-Signature-256"]
    status, answer = await post(meta, (body, headers))
    await settled(meta)
    assert (status, answer["error"]["code"]) == (401, "signature_missing")  # type: ignore[index]
    assert meta.launches == [] and meta.fake.calls == []


@pytest.mark.parametrize("forgery", ["other secret", "body changed after signing"])
async def test_a_badly_signed_connect_is_403_and_starts_nothing(meta: Meta, forgery: str) -> None:
    call = meta.fake.ring(OFFER)
    if forgery == "other secret":
        body, headers = meta.fake.signed(json.loads(meta.fake.connect_webhook(call)[0]), secret="not the app's")
    else:
        body, headers = meta.fake.connect_webhook(call)
        body = body.replace(call.caller.encode(), b"19999999999")
    status, answer = await post(meta, (body, headers))
    await settled(meta)
    assert (status, answer["error"]["code"]) == (403, "signature_invalid")  # type: ignore[index]
    assert meta.launches == [] and meta.fake.calls == []


async def test_a_connect_delivered_three_times_starts_one_session(meta: Meta) -> None:
    call = meta.fake.ring(OFFER)
    webhook = meta.fake.connect_webhook(call)
    answers = [await post(meta, webhook) for _ in range(3)]
    await settled(meta)
    assert [a for _, a in answers] == [{"events": 1, "taken": 1}, {"events": 1, "taken": 0}, {"events": 1, "taken": 0}]
    assert len(meta.launches) == 1


async def test_a_call_whose_bot_fails_to_start_is_rejected_not_left_ringing(
        meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "fail-start")
    call = meta.fake.ring(OFFER)
    assert (await post(meta, meta.fake.connect_webhook(call)))[0] == 200
    await settled(meta)
    assert (call.state, call.actions) == ("rejected", ["reject"])
    session = meta.launches[0]
    events = (await meta.dispatcher.client.get(f"/sessions/{session}/timeline")).json()["events"]
    answer = next(e for e in events if e["event"] == "whatsapp_answer")
    assert answer["action"] == "reject"
    # What the session's report.json and its `session.ended` webhook carry of the call.
    told = whatsapp_of(events)
    assert told is not None
    assert {k: told[k] for k in ("call_id", "from", "phone_number_id")} == {
        "call_id": call.call_id, "from": call.caller, "phone_number_id": PHONE_NUMBER_ID}
    assert [w["call_event"] for w in told["webhooks"]] == ["connect"] and told["simulated"] is False  # Meta's call
    assert [a["action"] for a in told["answers"]] == ["reject"]


async def test_a_call_whose_answer_meta_refuses_is_rejected_and_its_session_stopped(meta: Meta) -> None:
    # The stand-in answers with no SDP (`answer-to:` + the offer): Meta refuses it, as it would.
    call = meta.fake.ring(OFFER)
    assert (await post(meta, meta.fake.connect_webhook(call)))[0] == 200
    await settled(meta)
    assert (call.state, call.actions) == ("rejected", ["reject"])
    assert meta.fake.refusals[0]["code"] == 100
    events = (await meta.dispatcher.client.get(f"/sessions/{meta.launches[0]}/timeline")).json()["events"]
    assert "stop_requested" in [e["event"] for e in events]


async def test_a_call_to_a_number_not_configured_is_left_alone(meta: Meta) -> None:
    call = meta.fake.ring(OFFER, number="999999999999999")
    status, answer = await post(meta, meta.fake.connect_webhook(call))
    await settled(meta)
    assert (status, answer) == (200, {"events": 1, "taken": 0})
    assert meta.launches == [] and meta.fake.calls == []


async def test_a_webhook_of_another_field_is_taken_and_ignored(meta: Meta) -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}}]}]}
    assert await post(meta, meta.fake.signed(payload)) == (200, {"events": 0, "taken": 0})


async def test_a_signed_body_that_is_no_whatsapp_webhook_is_400(meta: Meta) -> None:
    status, answer = await post(meta, meta.fake.signed({"object": "page", "entry": []}))
    assert (status, answer["error"]["code"]) == (400, "invalid_webhook")  # type: ignore[index]


async def test_a_dispatcher_without_whatsapp_settings_says_which_to_set() -> None:
    app = create_app(Settings(), env={}, rooms=None)
    async with in_process(app, served=False) as dispatcher:
        answer = await dispatcher.client.post("/phone/whatsapp", content=b"{}")
    assert answer.status_code == 404
    assert "WHATSAPP_NUMBERS" in answer.json()["error"]["message"]
