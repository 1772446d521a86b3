"""Daily PSTN dial-in and dial-out, in a cloud mode (Fly) against the fakes (tests/fakes/daily.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pipecat.runner.types import DailyDialinRequest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone.daily_dialin import CREDENTIAL_MARGIN_SECONDS
from dispatcher.phone.state import PhoneState
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly

KEY = "dialin-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = "d" * 40
CALL = {"From": "+14155550100", "To": "+14155550199", "callId": "call-1", "callDomain": "dom-1"}


@dataclass
class Cloud:
    http: httpx.AsyncClient
    daily: FakeDaily
    launches: list[LaunchSpec] = field(default_factory=list)
    now: float = 1_800_000_000.0  # the phone path's clock (epoch seconds), set by the test


async def _cloud(fake_fly: FakeFly, fake_daily: FakeDaily, env: dict[str, str]) -> AsyncIterator[Cloud]:
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}))
    rooms = DailyRooms(DailySettings.from_env({**fake_daily.env, **env}))
    machines = fly_harness(fake_fly).make()
    cloud = Cloud(httpx.AsyncClient(base_url="https://calls.example.com"), fake_daily)
    launch = machines.launch

    async def recorded(spec: LaunchSpec) -> LaunchResult:
        cloud.launches.append(spec)
        return await launch(spec)

    machines.launch = recorded  # type: ignore[method-assign]
    app = create_app(settings, env={"DAILY_DIALIN_SECRET": SECRET}, machines=machines, rooms=rooms)
    phone: PhoneState = app.state.voicefleet.phone
    phone.clock = lambda: cloud.now
    cloud.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com")
    async with cloud.http:
        yield cloud
    await app.state.voicefleet.aclose()


@pytest.fixture
async def cloud(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[Cloud]:
    async for c in _cloud(fake_fly, fake_daily, {}):
        yield c


@pytest.fixture
async def dialout_cloud(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[Cloud]:
    async for c in _cloud(fake_fly, fake_daily, {"DAILY_ALLOW_DIALOUT": "1"}):
        yield c


async def test_a_dialin_webhook_makes_a_sip_room_and_starts_a_bot_with_pipecats_dialin_body(cloud: Cloud) -> None:
    answer = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    assert answer.status_code == 201, answer.text
    session_id = answer.json()["sessionId"]
    room = next(iter(cloud.daily.rooms.values()))
    assert room["config"]["sip"] == {"display_name": "+14155550100", "sip_mode": "dial-in", "num_endpoints": 1}
    assert answer.json()["dailyRoom"] == room["url"]
    (spec,) = cloud.launches
    request = DailyDialinRequest.model_validate(spec.body)  # what Pipecat's create_transport reads
    assert (request.dialin_settings.call_id, request.dialin_settings.call_domain) == ("call-1", "dom-1")
    assert request.dialin_settings.From == "+14155550100"
    assert request.daily_api_url == f"https://calls.example.com/phone/daily/{session_id}"
    assert request.daily_api_key != cloud.daily.api_key  # the deployment's Daily key never reaches a bot


async def test_the_bots_pinless_call_update_reaches_daily_with_the_deployments_key(cloud: Cloud) -> None:
    cloud.daily.hold_call("call-1", "dom-1")
    session_id = (await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)).json()["sessionId"]
    body = cloud.launches[0].body
    room_name = next(iter(cloud.daily.rooms))
    update = {"callId": "call-1", "callDomain": "dom-1", "sipUri": cloud.daily.sip_endpoint(room_name)}
    path = f"/phone/daily/{session_id}/dialin/pinlessCallUpdate"

    forged = await cloud.http.post(path, json=update, headers={"Authorization": "Bearer guess"})
    assert forged.status_code == 403
    other_call = {**update, "callId": "call-2"}
    stolen = await cloud.http.post(path, json=other_call, headers={"Authorization": f"Bearer {body['daily_api_key']}"})
    assert stolen.status_code == 403  # the credential opens its own call only
    assert cloud.daily.connected_calls == {}

    done = await cloud.http.post(path, json=update, headers={"Authorization": f"Bearer {body['daily_api_key']}"})
    assert done.status_code == 200, done.text
    assert cloud.daily.connected_calls == {"call-1": update["sipUri"]}


async def test_a_retried_webhook_finds_the_same_session(cloud: Cloud) -> None:
    first = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    again = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["sessionId"] == again.json()["sessionId"]
    assert len(cloud.daily.rooms) == 1 and len(cloud.launches) == 1


@pytest.mark.parametrize("path", [f"/phone/daily/dialin/{'x' * 40}", "/phone/daily/dialin"])
async def test_a_webhook_without_the_secret_touches_nothing(cloud: Cloud, path: str) -> None:
    answer = await cloud.http.post(path, json=CALL)
    assert answer.status_code == 403
    assert cloud.daily.rooms == {} and cloud.launches == []


async def test_dailys_verification_ping_is_answered_and_starts_nothing(cloud: Cloud) -> None:
    answer = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json={"To": "+14155550199"})
    assert answer.status_code == 200
    assert cloud.daily.rooms == {} and cloud.launches == []


@pytest.mark.parametrize("bad", [{**CALL, "callId": 7}, {**CALL, "callDomain": ""}, {**CALL, "sipHeaders": [1]}])
async def test_a_malformed_webhook_is_a_clear_422(cloud: Cloud, bad: dict[str, Any]) -> None:
    answer = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=bad)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"
    assert cloud.launches == []


DIALOUT = {
    "createDailyRoom": True,
    "dailyRoomProperties": {"enable_dialout": True},
    "body": {"dialout_settings": [{"phoneNumber": "+14155550123", "callerId": "caller-id-1"}]},
}


async def test_dialout_is_refused_unless_the_deployment_allows_it(cloud: Cloud) -> None:
    answer = await cloud.http.post("/start", json=DIALOUT, headers=AUTH)
    assert answer.status_code == 422 and "enable_dialout" in answer.text
    assert cloud.daily.rooms == {}


async def test_dialout_room_and_body_reach_daily_and_the_bot_untouched(dialout_cloud: Cloud) -> None:
    answer = await dialout_cloud.http.post("/start", json=DIALOUT, headers=AUTH)
    assert answer.status_code == 201, answer.text
    room = next(iter(dialout_cloud.daily.rooms.values()))
    assert room["config"]["enable_dialout"] is True
    (spec,) = dialout_cloud.launches
    assert spec.body == DIALOUT["body"]
    assert spec.bot_token is not None and dialout_cloud.daily.verify_token(spec.bot_token)["o"] is True
    assert dialout_cloud.daily.verify_token(answer.json()["dailyToken"])["o"] is False  # never the user


async def test_a_call_daily_does_not_hold_is_a_provider_error_never_a_500(cloud: Cloud) -> None:
    session_id = (await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)).json()["sessionId"]
    room_name = next(iter(cloud.daily.rooms))
    update = {"callId": "call-1", "callDomain": "dom-1", "sipUri": cloud.daily.sip_endpoint(room_name)}
    credential = cloud.launches[0].body["daily_api_key"]
    answer = await cloud.http.post(  # the caller hung up: Daily answers 404, no call on hold
        f"/phone/daily/{session_id}/dialin/pinlessCallUpdate", json=update,
        headers={"Authorization": f"Bearer {credential}"},
    )  # fmt: skip
    assert answer.status_code in (502, 503), answer.text
    error = answer.json()["error"]
    assert error["code"] == "daily_rejected"
    assert "on hold" not in error["message"]  # Daily's own words stay in the log
    assert cloud.daily.connected_calls == {}


async def test_the_call_credential_expires_with_the_longest_session_and_is_refused_after(cloud: Cloud) -> None:
    cloud.daily.hold_call("call-1", "dom-1")
    webhook_at = cloud.now = 1_800_000_030.0
    session_id = (await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)).json()["sessionId"]
    credential = cloud.launches[0].body["daily_api_key"]
    expires = int(credential.partition(".")[0])
    longest = Settings().max_session_seconds
    assert webhook_at + longest < expires <= webhook_at + longest + CREDENTIAL_MARGIN_SECONDS
    room_name = next(iter(cloud.daily.rooms))
    update = {"callId": "call-1", "callDomain": "dom-1", "sipUri": cloud.daily.sip_endpoint(room_name)}
    path = f"/phone/daily/{session_id}/dialin/pinlessCallUpdate"

    extended = f"{expires + 3600}.{credential.partition('.')[2]}"  # the expiry is signed
    refused = await cloud.http.post(path, json=update, headers={"Authorization": f"Bearer {extended}"})
    assert refused.status_code == 403
    cloud.now = expires + 1.0
    late = await cloud.http.post(path, json=update, headers={"Authorization": f"Bearer {credential}"})
    assert late.status_code == 403 and "expired" in late.json()["error"]["message"]
    assert cloud.daily.connected_calls == {}
    cloud.now = expires - 1.0
    in_time = await cloud.http.post(path, json=update, headers={"Authorization": f"Bearer {credential}"})
    assert in_time.status_code == 200, in_time.text


async def test_a_webhook_retried_in_the_next_minute_finds_the_same_session(cloud: Cloud) -> None:
    cloud.now = 1_800_000_059.5  # the last second of a minute
    first = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    cloud.now += 1.0
    again = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert first.json()["sessionId"] == again.json()["sessionId"] and len(cloud.launches) == 1


async def test_the_secret_url_without_a_configured_secret_names_daily_dialin_secret(
    fake_fly: FakeFly, fake_daily: FakeDaily
) -> None:
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}))
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env={}, machines=fly_harness(fake_fly).make(), rooms=rooms)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com") as http:
        answer = await http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    await app.state.voicefleet.aclose()
    assert answer.status_code == 403
    assert "DAILY_DIALIN_SECRET is not set" in answer.json()["error"]["message"]
    assert "DAILY_API_KEY" not in answer.json()["error"]["message"]


async def test_a_local_dispatcher_without_daily_says_how_to_offer_it(fake_daily: FakeDaily) -> None:
    app = create_app(Settings(), env=dict(fake_daily.env), rooms=None)  # keyless local, DAILY_API_KEY set
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        answer = await http.post("/phone/daily/dialin", json=CALL)
    await app.state.voicefleet.aclose()
    assert answer.status_code == 409
    message = answer.json()["error"]["message"]
    assert "TRANSPORTS=webrtc,daily and DAILY_API_KEY" in message and "Trying it locally" in message, message


async def test_a_start_that_asks_for_no_dialout_is_taken_where_dialout_is_off(cloud: Cloud) -> None:
    # `enable_dialout: false` is Daily's default: Pipecat Cloud's PSTN servers send it on every start.
    answer = await cloud.http.post("/start", json={**DIALOUT, "dailyRoomProperties": {"enable_dialout": False}},
                                   headers=AUTH)
    assert answer.status_code == 201, answer.text
    room = next(iter(cloud.daily.rooms.values()))
    assert "enable_dialout" not in room["config"]
