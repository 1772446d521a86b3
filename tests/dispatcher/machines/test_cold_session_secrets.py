"""A cold bot's session secrets reach it over its channel, never in its launch values.

Whoever may describe a machine reads its launch values: `ecs:DescribeTasks` shows a task's
container overrides, instance read access a VM's metadata, the Fly API a machine's config. So a
cold machine is launched with its session id, its transport and its own channel credential only;
the Daily bot token, a dial-in call's credential (in the caller's `body`), the bot's TURN password
and the rest of the `body` come as its `assign` after its hello. Each provider against its fake:
the create call and the machine as its API describes it hold none of them, and the bot's channel
brings every one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.sessions.cold_secrets import CREDENTIAL_SLACK_SECONDS
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import Harness, _ecs_tasks, fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.cold_bot import channel_url, take_session_values
from tests.support.dispatcher_server import serving
from tests.support.redis_server import redis_server

KEY = "cold-secrets-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
DIALIN_SECRET = "w" * 40
CALL = {"From": "+14155550100", "To": "+14155550199", "callId": "call-7", "callDomain": "dom-7"}
CALLER_DATA = "patient-4711"  # something only the caller's `body` holds


@dataclass
class Deployment:
    http: httpx.AsyncClient
    channel_url: str
    channel_token: Callable[[str], str | None]  # the credential a start issues its cold bot, if any


ENV = {"TURN_URLS": "turn:turn.example.com:3478", "TURN_SHARED_SECRET": "t" * 40, "DAILY_DIALIN_SECRET": DIALIN_SECRET}


def settings_for(harness: Harness) -> Settings:
    return Settings(
        machines=harness.name, api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600,
        max_concurrent_sessions=1000, bot_channel_token="c" * 40, transports=("daily", "webrtc"),
    )  # fmt: skip


@pytest.fixture
async def deployment(harness: Harness, fake_daily: FakeDaily) -> AsyncIterator[Deployment]:
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings_for(harness), env=ENV, machines=harness.make(), rooms=rooms)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com")
    async with serving(app) as port:
        yield Deployment(http, channel_url(port), app.state.voicefleet.sessions._cold.channel_token)
    await http.aclose()
    await app.state.voicefleet.aclose()


def described(harness: Harness, session_id: str) -> str:
    """The machine's launch values as the provider's API shows them to whoever may read it, and
    the create call that set them."""
    if harness.name == "ecs":
        tasks = _ecs_tasks(harness.fake, session_id)  # DescribeTasks
        assert tasks and all("overrides" in t for t in tasks)
        sent = [r for r in harness.fake.requests_for("RunTask") if r["startedBy"] == session_id]
        return json.dumps([[t["overrides"] for t in tasks], sent], default=str)
    if harness.name == "gce":
        calls = [c.json() for c in harness.fake.calls_to("POST", "/instances")]
        return json.dumps([harness.fake.instances[f"vf-{session_id}"]["metadata"], calls])
    if harness.name == "cloudrun":  # executions.get shows the template with the run's env
        calls = [c.json() for c in harness.fake.calls_to("POST", ":run")]
        return json.dumps([harness.fake.of_session(session_id), calls])
    if harness.name == "modal":  # what the create sent: the Sandbox's tags, command and Secret
        sandbox = harness.fake.by_name(f"vf-{session_id}")
        return json.dumps([sandbox.tags, sandbox.args, sandbox.env])
    if harness.name == "aci":  # GET shows no secureValue: what the PUT sent is the record to read
        calls = [c.json() for c in harness.fake.calls_to("PUT", "/containerGroups/")]
        return json.dumps([harness.fake._view(f"vf-{session_id}"), calls])
    if harness.name == "k8s":  # the pod (and, agent-sandbox, its claim) as a GET shows it, and every create
        name = f"vf-{session_id}"
        calls = [c.json() for c in harness.fake.calls_to("POST") if "/tokenreviews" not in c.path]
        return json.dumps([harness.fake.pods.get(name), getattr(harness.fake, "claims", {}).get(name), calls])
    calls = [c.json() for c in harness.fake.calls_to("POST", "/machines")]
    return json.dumps([harness.fake.by_name(f"vf-{session_id}")["config"], calls])


async def test_a_dialin_bots_token_and_call_credential_reach_it_over_its_channel_not_its_launch_values(
    deployment: Deployment, harness: Harness
) -> None:
    answer = await deployment.http.post(f"/phone/daily/dialin/{DIALIN_SECRET}", json=CALL)
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["sessionId"]
    [launched] = harness.received(session_id)
    assert (launched["room_url"], launched["token"], launched["body"]) == ("", "", "")

    values = await take_session_values(deployment.channel_url, launched["channel_token"], session_id,
                                       identity=await harness.identity(session_id),
                                       machine_id=harness.machine_id(session_id))
    assert (values["transport"], values["room_url"]) == ("daily", answer.json()["dailyRoom"])
    token, credential = values["token"], values["body"]["daily_api_key"]
    assert values["body"]["dialin_settings"]["call_id"] == "call-7"
    seen = described(harness, session_id)
    # Control: these are the launch values (a pool's pod is given no credential to look for).
    assert session_id in seen and (harness.identity_only or launched["channel_token"] in seen)
    assert token not in seen, "the Daily bot token is in the launch values"
    assert credential not in seen, "the dial-in call's credential is in the launch values"


async def test_a_webrtc_bots_turn_password_and_the_callers_body_reach_it_over_its_channel_not_its_launch_values(
    deployment: Deployment, harness: Harness
) -> None:
    before = time.time()
    response = await deployment.http.post(
        "/start", json={"transport": "webrtc", "body": {"caller": CALLER_DATA}}, headers=AUTH
    )
    after = time.time()
    assert response.status_code == 201, response.text
    session_id = response.json()["sessionId"]  # Pipecat's shape (the request named its transport)
    [launched] = harness.received(session_id)
    assert (launched["ice_config"], launched["body"]) == ("", "")
    if harness.identity_only:  # a pool's pod: no credential is issued, its identity alone admits its bot
        assert launched["channel_token"] == "" and deployment.channel_token(session_id) is None
    else:  # the credential outlives the machine's longest life (a session, a slow start, reconnects), no more
        lifetime = 600 + 30 + CREDENTIAL_SLACK_SECONDS  # MAX_SESSION_SECONDS + START_WAIT_SECONDS + slack
        assert int(before + lifetime) <= int(launched["channel_token"].split(".")[3]) <= int(after + lifetime)

    values = await take_session_values(deployment.channel_url, launched["channel_token"], session_id,
                                       identity=await harness.identity(session_id),
                                       machine_id=harness.machine_id(session_id))
    assert values["transport"] == "webrtc" and values["body"] == {"caller": CALLER_DATA}
    [server] = values["ice_config"]["iceServers"]
    assert server["username"].endswith(f":{session_id}:bot")  # the bot's own TURN credential
    seen = described(harness, session_id)
    assert session_id in seen and (harness.identity_only or launched["channel_token"] in seen)
    assert server["credential"] not in seen, "the bot's TURN password is in the launch values"
    assert CALLER_DATA not in seen, "the caller's body is in the launch values"


async def test_another_replica_welcomes_the_bot_and_sends_its_values_which_the_store_holds_sealed(
    fake_fly: FakeFly, fake_daily: FakeDaily, tmp_path: Path
) -> None:
    """With several replicas the bot's hello may reach one that did not launch it: the values wait
    in the store, sealed with a key the replicas derive from the deployment secret, and that
    replica sends them; the store's copy is gone once the bot has them."""
    harness = fly_harness(fake_fly)
    with redis_server(tmp_path) as redis:
        apps = [
            create_app(settings_for(harness), env={**ENV, **redis.env, "REPLICA_ID": name},
                       machines=harness.make(), rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
            for name in ("launching", "other")
        ]  # fmt: skip
        launching, other = apps
        store = redis.admin()  # the test looks beyond the replicas' own user
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=launching), base_url="https://x") as http:
                response = await http.post("/start", json={"transport": "webrtc", "body": {"caller": CALLER_DATA}},
                                           headers=AUTH)
            assert response.status_code == 201, response.text
            session_id = response.json()["sessionId"]
            [launched] = harness.received(session_id)
            [key] = store.keys(f"*secrets:{session_id}")
            sealed = store.get(key)
            assert CALLER_DATA not in sealed and "iceServers" not in sealed  # sealed, not plain
            delivery = launching.state.voicefleet.sessions._cold.delivery
            assert await delivery.waiting(session_id)  # what the launching replica's watch asks

            async with serving(other) as port:
                values = await take_session_values(channel_url(port), launched["channel_token"], session_id,
                                                    identity=await harness.identity(session_id),
                                       machine_id=harness.machine_id(session_id))
                assert values["body"] == {"caller": CALLER_DATA}
                [server] = values["ice_config"]["iceServers"]
                assert server["credential"] not in sealed
                for _ in range(600):  # the other replica drops the store's copy once the bot answered
                    if not store.exists(key):
                        break
                    await asyncio.sleep(0.05)
                assert not store.exists(key)
                assert not await delivery.waiting(session_id)  # taken: the launching replica's watch stops nothing
        finally:
            store.close()
            for app in apps:
                await app.state.voicefleet.aclose()


async def test_a_late_machine_a_keyed_retry_is_answered_with_gets_its_values(
    fake_fly: FakeFly, fake_daily: FakeDaily
) -> None:
    """The create's answer was lost and the start refused, which dropped the bot's values; the
    machine landed later and the client's retry with the same Idempotency-Key was answered with it
    (200). Its bot dials in and must get its values, or the session the client holds never runs."""
    harness = fly_harness(fake_fly)
    machines = harness.make(FLY_TIMEOUT_SECONDS="0.5")
    lost = machines.lost  # type: ignore[attr-defined]
    # Quick looks; the watch after the refusal stays out of it (what it does: test_lost_creates.py).
    lost.look_pauses, lost.watch_pauses = (0.05, 0.1), (3600.0,)
    app = create_app(settings_for(harness), env=ENV, machines=machines,
                     rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    start = {"transport": "webrtc", "body": {"caller": CALLER_DATA}}
    headers = {**AUTH, "Idempotency-Key": "call-9"}
    hold = harness.hold_create(10)
    try:
        async with serving(app) as port, httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                             base_url="https://x") as http:
            refused = await http.post("/start", json=start, headers=headers)
            assert refused.status_code == 503, refused.text
            hold.release()  # the create lands after the refusal
            harness.settle()
            again = await http.post("/start", json=start, headers=headers)
            assert again.status_code == 200, again.text
            session_id = again.json()["sessionId"]
            launched = harness.received(session_id)[0]  # the refused start's (Fly's retries send the same)
            values = await asyncio.wait_for(
                take_session_values(channel_url(port), launched["channel_token"], session_id,
                                    identity=await harness.identity(session_id),
                                    machine_id=harness.machine_id(session_id)), 30)
            assert values["transport"] == "webrtc" and values["body"] == {"caller": CALLER_DATA}
    finally:
        hold.release()
        await app.state.voicefleet.aclose()


async def test_a_keyed_retry_after_a_start_that_timed_out_with_its_machine_leaves_the_bots_values_alone(
    fake_fly: FakeFly, fake_daily: FakeDaily
) -> None:
    """`?wait=started` answered 504 and left the machine starting; its bot took its values. The
    retry with the same key is a replay of that session, not the adoption of a lost create's
    machine: nothing is held again (values nobody takes would have the dial watch stop the bot)."""
    harness = fly_harness(fake_fly)
    app = create_app(dataclasses.replace(settings_for(harness), start_wait_seconds=0.5), env=ENV,
                     machines=harness.make(), rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    start = {"transport": "webrtc", "body": {"caller": CALLER_DATA}}
    headers = {**AUTH, "Idempotency-Key": "call-10"}
    try:
        async with serving(app) as port, httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                             base_url="https://x") as http:
            timed_out = await http.post("/start?wait=started", json=start, headers=headers)
            assert timed_out.status_code == 504, timed_out.text
            session_id = timed_out.json()["error"]["session_id"]
            [launched] = harness.received(session_id)
            await take_session_values(channel_url(port), launched["channel_token"], session_id,
                                      identity=await harness.identity(session_id),
                                      machine_id=harness.machine_id(session_id))
            again = await http.post("/start", json=start, headers=headers)
            assert again.status_code == 200, again.text
            assert not await app.state.voicefleet.sessions._cold.delivery.waiting(session_id)
    finally:
        await app.state.voicefleet.aclose()
