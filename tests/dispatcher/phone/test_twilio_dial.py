"""`POST /calls` through Twilio's Calls API: the dispatcher in-process, Twilio a strict fake on a real port
(tests/fakes/twilio_outbound.py) whose signed callbacks reach the app through its ASGI transport. The
create's fields, the outcomes of calls never answered, Twilio's refusals, answering machines with each
choice, and the account's pace across two replicas on one real redis-server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.call_pace import paced
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
from dispatcher.phone.twilio_dial import DialSettings
from dispatcher.phone.twilio_dialer import TwilioDialer
from dispatcher.settings import Settings
from dispatcher.store.client import DEFAULT_PREFIX
from dispatcher.store.local import LocalCoordination
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.phone.placed_calls import (
    TWILIO_CALL,
    calls_allowed,
    events,
    outcomes,
    placed_once_though_unanswered,
    twilio_placing,
)
from tests.dispatcher.store.conftest import settings_for
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall, sign
from tests.support.redis_server import RedisServer, redis_server

PUBLIC = "https://calls.example.com"


@pytest.fixture
async def api(twilio: FakeTwilioCalls) -> AsyncIterator[httpx.AsyncClient]:
    env = twilio_placing(twilio.url, ("+14155550199", "+14155550111"))  # the second: Twilio's refusal of it
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.state.voicefleet.aclose()


async def placed(api: httpx.AsyncClient, twilio: FakeTwilioCalls, **change: Any) -> tuple[str, PlacedCall]:
    answer = await api.post("/calls", json={**TWILIO_CALL, **change})
    assert answer.status_code == 201, answer.text
    call = twilio.calls_by_sid[answer.json()["call_sid"]]
    assert isinstance(call, PlacedCall)
    return answer.json()["session_id"], call


async def test_a_twilio_call_is_created_with_its_stream_its_signed_callbacks_and_async_amd(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    answer = await api.post("/calls", json=TWILIO_CALL)
    assert answer.status_code == 201, answer.text
    shown = answer.json()
    assert shown["carrier"] == "twilio" and shown["status"] == "starting" and shown["call_sid"].startswith("CA")
    call = twilio.placed[0]
    assert call.one("To") == TWILIO_CALL["to"] and call.one("From") == TWILIO_CALL["from"]
    assert call.one("Timeout") == "30"
    assert call.stream_url.startswith("wss://calls.example.com/ws/twilio/")
    callbacks = f"{PUBLIC}/phone/twilio/calls/{shown['session_id']}/"
    assert (call.one("StatusCallback") or "").startswith(callbacks)
    assert (call.one("AsyncAmdStatusCallback") or "").startswith(callbacks)
    assert [v for k, v in call.form if k == "StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert (call.one("MachineDetection"), call.one("AsyncAmd")) == ("Enable", "true")  # the default: hang_up
    assert "TWILIO" not in call.stream_url and AUTH_TOKEN not in call.stream_url


@pytest.mark.parametrize(("status", "outcome"), [("busy", "busy"), ("no-answer", "no_answer"),
                                                 ("failed", "failed"), ("canceled", "canceled")])
async def test_a_call_never_answered_ends_its_session_with_the_outcome(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls, status: str, outcome: str) -> None:
    session_id, call = await placed(api, twilio)
    answers = await twilio.finish(call.sid, status)
    assert answers and all(a.status_code == 204 for a in answers), [a.text for a in answers]
    timeline = await events(api, session_id)
    assert outcomes(timeline) == [("call_outcome", outcome), ("ended", outcome)], timeline
    assert timeline[0]["event"] == "requested" and timeline[-1]["call_sid"] == call.sid


async def test_an_answered_call_records_answered_and_its_session_goes_on(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    session_id, call = await placed(api, twilio)
    assert all(a.status_code == 204 for a in await twilio.answer(call.sid))
    assert outcomes(await events(api, session_id)) == [("call_outcome", "answered")]


@pytest.mark.parametrize(("change", "code", "twilio_code"), [
    ({"to": "+1415"}, "invalid_to", "21211"), ({"from": "+14155550111"}, "invalid_from", "21210")])
async def test_a_number_twilio_refuses_is_422_with_its_error_and_the_session_ends_not_placed(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls, change: dict[str, str], code: str, twilio_code: str) -> None:
    answer = await api.post("/calls", json={**TWILIO_CALL, **change}, headers={"Idempotency-Key": f"refused-{code}"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code and twilio_code in answer.json()["error"]["message"]
    assert twilio.placed == []


async def test_twilio_s_429_is_answered_429_with_retry_after_and_not_retried_within_its_wait(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    twilio.create_per_second = 1  # the fake's CPS below the dispatcher's setting: Twilio refuses the second
    await placed(api, twilio)
    refused = await api.post("/calls", json=TWILIO_CALL)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "twilio_throttled" and int(refused.headers["Retry-After"]) >= 1
    # Its retry, within Twilio's wait, was held back unsent: Twilio saw the two creates only.
    assert len(twilio.calls_to("POST", "Calls.json")) == 2


async def test_a_callback_not_signed_by_twilio_or_replayed_is_refused(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    session_id, call = await placed(api, twilio)
    url = call.one("StatusCallback") or ""
    form = [("AccountSid", ACCOUNT_SID), ("CallSid", call.sid), ("CallStatus", "busy")]
    path = url.removeprefix(PUBLIC)
    forged = await api.post(path, data=dict(form), headers={"X-Twilio-Signature": sign("not-the-token", url, form)})
    assert forged.status_code == 403, forged.text
    other = url.replace(session_id, session_id[:-1] + ("a" if session_id[-1] != "a" else "b"))
    elsewhere = await api.post(other.removeprefix(PUBLIC), data=dict(form),
                               headers={"X-Twilio-Signature": sign(AUTH_TOKEN, other, form)})
    assert elsewhere.status_code == 403, elsewhere.text  # another session's URL: its MAC does not match
    signed = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}
    assert (await api.post(path, data=dict(form), headers=signed)).status_code == 204
    assert (await api.post(path, data=dict(form), headers=signed)).status_code == 403  # the same again
    assert outcomes(await events(api, session_id)) == [("call_outcome", "busy"), ("ended", "busy")]


async def test_a_machine_with_hang_up_ends_the_call_at_twilio_and_records_voicemail(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    session_id, call = await placed(api, twilio)
    await twilio.answer(call.sid)
    answer = await twilio.detect(call.sid, "machine_start")
    assert answer is not None
    assert answer.status_code == 204, answer.text
    assert call.status == "completed" and call.twiml == []
    timeline = await events(api, session_id)
    assert outcomes(timeline) == [("call_outcome", "answered"), ("call_outcome", "voicemail"), ("ended", "voicemail")]
    assert [e["answered_by"] for e in timeline if e["event"] == "answered_by"] == ["machine_start"]


async def test_a_person_answering_changes_nothing(api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    session_id, call = await placed(api, twilio)
    await twilio.answer(call.sid)
    assert (await twilio.detect(call.sid, "human")) is not None
    assert call.status == "in-progress" and call.twiml == []
    assert outcomes(await events(api, session_id)) == [("call_outcome", "answered")]


@pytest.mark.parametrize(("voicemail", "mode", "verdict"), [("message", "DetectMessageEnd", "machine_end_beep"),
                                                           ("flag", "Enable", "machine_start")])
async def test_a_machine_with_message_or_flag_hands_the_call_to_a_bot_told_who_answered(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls, voicemail: str, mode: str, verdict: str) -> None:
    session_id, call = await placed(api, twilio, voicemail=voicemail, body={"campaign": "renewals"})
    assert call.one("MachineDetection") == mode
    await twilio.answer(call.sid)
    answer = await twilio.detect(call.sid, verdict)
    assert answer is not None
    assert answer.status_code == 204, answer.text
    assert call.status == "in-progress" and len(call.twiml) == 1
    token = call.twiml[0].split("/ws/twilio/")[1].split('"')[0]
    assert token not in call.stream_url  # a new stream, with a token of its own
    grant = api.app.state.voicefleet.phone.tokens.check(token, "twilio")  # type: ignore[attr-defined]
    assert grant.body["answered_by"] == verdict and grant.body["body"] == {"campaign": "renewals"}
    timeline = await events(api, session_id)
    assert outcomes(timeline)[-2:] == [("call_outcome", "voicemail"), ("ended", "voicemail")]
    assert timeline[-1]["continued_in"] != session_id


async def test_without_twilio_s_credentials_a_twilio_call_says_which_settings_to_set() -> None:
    app = create_app(Settings(), env={}, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/calls", json={k: v for k, v in TWILIO_CALL.items() if k != "carrier"})
        mixed = await client.post("/calls", json={**TWILIO_CALL, "trunk": "far"})
    await app.state.voicefleet.aclose()
    assert answer.status_code == 503 and "TWILIO_ACCOUNT_SID" in answer.json()["error"]["message"], answer.text
    assert mixed.status_code == 422 and mixed.json()["error"]["code"] == "trunk_not_used"


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 505, 520, 200, 201])  # 2xx: a proxy's page
async def test_a_create_answered_5xx_is_never_sent_again_and_its_key_answers_with_the_same_session(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls, status: int) -> None:
    """Twilio takes no idempotency key on a create, and a 5xx does not prove that no call was queued:
    the outcome is unknown, as a create with no answer at all."""
    twilio.queued_but_answered = status
    session_id = await placed_once_though_unanswered(api, TWILIO_CALL, status, "twilio_unanswered")
    assert len(twilio.calls_to("POST", "Calls.json")) == 1 and len(twilio.placed) == 1
    timeline = await events(api, session_id)
    assert [e.get("placed") for e in timeline if e["event"] == "requested"][-1] == "unknown", timeline


KEY = "vf_twilio_dial_key_0123456789abcdef"
KEYS = f"dialer:{KEY}"
ELSEWHERE = {"Authorization": f"Bearer {KEY}", "Host": "attacker.example.net", "X-Forwarded-Proto": "https"}


async def keyed_call(twilio: FakeTwilioCalls, **env: str) -> httpx.Response:
    """`POST /calls` with an API key whose holder names a host of theirs (a keyless dispatcher takes
    loopback names only); then, when it was placed, the call's busy signal from Twilio, whose answers
    are the answer's `extensions["callbacks"]`."""
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
           "TWILIO_CALLS_PER_SECOND": "50", "DISPATCHER_API_KEYS": KEYS,
           **calls_allowed("twilio", caller="dialer"), **env}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/calls", json=TWILIO_CALL, headers=ELSEWHERE)
        if answer.status_code == 201:
            answer.extensions["callbacks"] = await twilio.finish(answer.json()["call_sid"], "busy")
    await app.state.voicefleet.aclose()
    return answer


async def test_without_phone_public_url_a_twilio_call_is_refused_whatever_host_the_client_names(
        twilio: FakeTwilioCalls) -> None:
    """The stream and callbacks would otherwise go to the request's Host: a key's holder would have the
    callee's audio and the outcomes sent to a host of theirs, on the deployment's account."""
    answer = await keyed_call(twilio)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "twilio_not_configured", answer.text
    assert "PHONE_PUBLIC_URL" in answer.json()["error"]["message"]
    assert twilio.calls_to("POST", "Calls.json") == []


def assert_named_at(twilio: FakeTwilioCalls, answer: httpx.Response, base: str) -> None:
    """The placed call's stream and both callbacks are at `base`, and its callbacks were signed over it."""
    assert answer.status_code == 201, answer.text
    call = twilio.placed[0]
    assert call.stream_url.startswith(base.replace("https://", "wss://", 1) + "/ws/twilio/")
    for name in ("StatusCallback", "AsyncAmdStatusCallback"):
        assert (call.one(name) or "").startswith(f"{base}/phone/twilio/calls/"), call.one(name)
    assert {a.status_code for a in answer.extensions["callbacks"]} == {204}  # signed over that URL, and taken


async def test_a_twilio_call_s_stream_and_callbacks_name_phone_public_url_not_the_request_s_host(
        twilio: FakeTwilioCalls) -> None:
    answer = await keyed_call(twilio, PHONE_PUBLIC_URL=PUBLIC)
    assert_named_at(twilio, answer, PUBLIC)


async def test_with_several_regions_a_twilio_call_s_stream_and_callbacks_name_this_region_s_url(
        twilio: FakeTwilioCalls) -> None:
    """Its values are kept in this region: the callbacks come here, not to a front door shared by every
    region, and their signatures are checked over this region's URL."""
    here = "https://us.example.com"
    answer = await keyed_call(twilio, PHONE_PUBLIC_URL=PUBLIC, REGION="us", REGION_SECRET="s" * 32,
                              REGIONS=f"us={here},eu=https://eu.example.com")
    assert_named_at(twilio, answer, here)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


async def test_two_replicas_never_create_calls_faster_than_the_account_s_pace(redis: RedisServer) -> None:
    """Two replicas on one redis-server, the account at 2 calls a second, six calls at once between them:
    the n-th create Twilio saw came at least n half-seconds after the first (less the first's own delay
    on its way, a quarter second of slack: unpaced, all six come within a few milliseconds)."""
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    replicas = [RedisCoordination(settings_for(redis, name, prefix)) for name in ("r-a", "r-b")]
    settings = DialSettings(calls_per_second=2.0, max_wait_seconds=5.0)
    with serve(FakeTwilioCalls(create_per_second=100)) as fake:  # Twilio queues past its CPS: times show it
        clients = [TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), fake.url) for _ in replicas]
        dialers = [TwilioDialer(settings, client, ACCOUNT_SID, c, c.session_values(b"k" * 32), c.key_holders)
                   for client, c in zip(clients, replicas, strict=True)]

        async def place(n: int) -> str | None:
            dialer = dialers[n % 2]
            await dialer.pace()
            form = [("To", "+14155550100"), ("From", "+14155550199"), ("Twiml", "<Response/>")]
            return await dialer.place(f"s{n}", form, {"owner": "x", "body": {}, "voicemail": "hang_up"})

        try:
            sids = await asyncio.gather(*(place(n) for n in range(6)))
        finally:
            for each in clients:
                await each.aclose()
            for coordination in replicas:
                await coordination.aclose()
        created = fake.created_at
    assert len(set(sids)) == 6 and len(created) == 6
    since_first = [at - created[0] for at in created]
    assert all(since >= 0.5 * n - 0.25 for n, since in enumerate(since_first)), since_first


@pytest.mark.parametrize("bucket", ["twilio:AC1", "trunk:far"])
async def test_replicas_with_different_rates_pace_one_account_from_one_bucket(redis: RedisServer, bucket: str) -> None:
    """Mid-rollout one replica has 1 call a second, the other 2: both take turns from the account's (or the
    trunk's) one bucket, each refilling it at its own rate, so the second call waits; with a bucket per
    rate each would go at once and the account would get both rates added."""
    prefix = f"{DEFAULT_PREFIX}t-{secrets.token_hex(4)}:"
    replicas = [RedisCoordination(settings_for(redis, name, prefix)) for name in ("r-a", "r-b")]
    try:
        waits = [await paced(coordination, bucket, rate, 5.0, code="paced", what="the account", setting="X")
                 for coordination, rate in zip(replicas, (1.0, 2.0), strict=True)]
    finally:
        for coordination in replicas:
            await coordination.aclose()
    assert waits[0] == 0.0 and waits[1] >= 0.5, waits  # the first call's turn (a second) is the second's wait


async def test_a_rate_changed_in_one_process_refills_the_same_bucket_at_the_new_rate() -> None:
    """A trunk's `cps` read anew from the edge paces from the bucket its calls took turns from: the call
    right after the change waits out the turn the last call took (a second), the next, once that one has
    gone, only half a second (2 a second now, not the 1 the bucket was made with)."""
    store = LocalCoordination()
    waits = [await paced(store, "trunk:far", rate, 5.0, code="paced", what="trunk 'far'", setting="X")
             for rate in (1.0, 2.0, 2.0)]
    assert waits[0] == 0.0 and 0.8 <= waits[1] <= 1.0 and 0.3 <= waits[2] <= 0.6, waits


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"Record": "true", "Colour": "blue"}, 400, 20001), ({"From": "14155550199"}, 400, 21212),
    ({"To": "+1415"}, 400, 21211), ({"Timeout": "soon"}, 400, 21208), ({"MachineDetection": "Maybe"}, 400, 20001)])
async def test_the_fake_refuses_a_create_as_twilio_does(twilio: FakeTwilioCalls, change: dict[str, str], status: int,
                                                      code: int) -> None:
    """The fake is never more lenient than Twilio: what the dispatcher sends is held to the documented fields."""
    form = {"To": "+14155550100", "From": "+14155550199", "Twiml": "<Response/>", **change}
    async with httpx.AsyncClient(base_url=twilio.url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as client:
        answer = await client.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", data=form)
        good = await client.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
                                 data={"To": "+14155550100", "From": "+14155550199", "Twiml": "<Response/>"})
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert good.status_code == 201 and good.json()["status"] == "queued"
