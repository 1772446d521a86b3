"""POST /start in Pipecat's Daily shapes, in a cloud mode (Fly) against the fakes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly

KEY = "pipecat-cloud-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_SESSION = 600


@pytest.fixture
async def cloud(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=MAX_SESSION)
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env={}, machines=fly_harness(fake_fly).make(), rooms=rooms)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        yield http
    await app.state.voicefleet.aclose()


async def test_pipecat_clouds_daily_request_gets_exactly_what_the_daily_transport_reads(cloud, fake_daily):
    response = await cloud.post("/start", json={"createDailyRoom": True, "body": {"a": 1}}, headers=AUTH)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert set(answer) == {"dailyRoom", "dailyToken"}
    session_id = response.headers["Location"].removeprefix("/sessions/")
    assert answer["dailyRoom"] == f"https://voicefleet-test.daily.co/vf-{session_id}"
    claims = fake_daily.verify_token(answer["dailyToken"])
    assert (claims["r"], claims["o"]) == (f"vf-{session_id}", False)


async def test_our_shape_gets_both_names_in_the_cloud(cloud):
    answer = (await cloud.post("/start", json={"body": {}}, headers=AUTH)).json()
    assert (answer["dailyRoom"], answer["dailyToken"], answer["sessionId"]) == (
        answer["room_url"], answer["token"], answer["session_id"]
    )
    assert None not in answer.values()
    got = (await cloud.get(f"/sessions/{answer['session_id']}", headers=AUTH)).json()
    assert got["dailyRoom"] == got["room_url"] == answer["room_url"]


async def test_allowed_room_and_token_properties_reach_the_room_and_the_users_token(cloud, fake_daily):
    exp = int(time.time()) + 120
    response = await cloud.post(
        "/start",
        json={
            "createDailyRoom": True,
            "dailyRoomProperties": {"enable_chat": True, "exp": exp, "max_participants": 2},
            "dailyMeetingTokenProperties": {"user_name": "Ada", "eject_after_elapsed": 60, "start_video_off": True,
                                            "exp": exp - 60},  # a shorter join window than the default
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    room = response.json()["dailyRoom"].rsplit("/", 1)[1]
    config = fake_daily.rooms[room]["config"]
    assert (config["enable_chat"], config["exp"], config["max_participants"]) == (True, exp, 2)
    assert config["eject_at_room_exp"] is True
    claims = fake_daily.verify_token(response.json()["dailyToken"])
    assert (claims["u"], claims["eje"], claims["vo"], claims["o"]) == ("Ada", 60, True, False)
    assert claims["exp"] == exp - 60


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"dailyMeetingTokenProperties": {"is_owner": True}}, "dailyMeetingTokenProperties.is_owner: may not be set"),
        ({"dailyMeetingTokenProperties": {"user_id": "bot-x"}}, "dailyMeetingTokenProperties.user_id: may not be set"),
        ({"dailyMeetingTokenProperties": {"eject_after_elapsed": MAX_SESSION + 1}}, "must be 1-600"),
        ({"dailyMeetingTokenProperties": {"exp": int(time.time()) + 10**6}}, "may not be later than"),
        ({"dailyRoomProperties": {"exp": int(time.time()) + 10**6}}, "may not be later than this deployment's room"),
        ({"dailyRoomProperties": {"enable_recording": "cloud"}}, "enable_recording: this deployment configured no"),
        ({"dailyRoomProperties": {"eject_at_room_exp": False}}, "may not be turned off"),
        ({"dailyRoomProperties": {"max_participants": 50}}, "must be 2 or 3"),
    ],
)
async def test_properties_a_caller_may_not_set_are_refused_by_name(cloud, fake_daily, fake_fly, properties, message):
    response = await cloud.post("/start", json={"createDailyRoom": True, **properties}, headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert fake_daily.rooms == {}  # refused before anything was created


@pytest.mark.parametrize(
    ("request_json", "message"),
    [
        ({"transport": "webrtc"}, "transport 'webrtc' is not offered by this deployment; it offers daily"),
        ({"createDailyRoom": False, "body": {}}, "createDailyRoom: false (transport 'webrtc') is not offered"),
        ({"transport": "daily", "createDailyRoom": False}, "createDailyRoom: false contradicts transport 'daily'"),
    ],
)
async def test_a_session_without_a_room_is_refused_where_every_session_has_one(cloud, request_json, message):
    response = await cloud.post("/start", json=request_json, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json()["detail"]


async def test_the_runners_direct_offer_path_is_local_only(cloud, fake_fly):
    response = await cloud.post("/api/offer", json={"sdp": "v=0", "type": "offer"}, headers=AUTH)
    assert response.status_code == 404
    assert "POST /start" in response.json()["detail"]
    assert [c for c in fake_fly.calls if c.method == "POST"] == []  # no machine was launched
