"""Daily's cloud recording through `dailyRoomProperties`: allowed only into the deployment's own
bucket (DAILY_RECORDINGS_BUCKET) and only where the session's recording policy keeps it; the
fake Daily refuses what Daily refuses (unknown properties, a bucket without its fields)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.media.daily_bucket import parse_recordings_bucket
from dispatcher.settings import Settings, SettingsError, hash_api_key
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import API_KEY, FakeDaily
from tests.fakes.fly import FakeFly

KEY = "daily-recording-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROLE = "arn:aws:iam::123456789012:role/daily-recordings"
BUCKET = f"bucket=acme-calls,region=us-west-2,role={ROLE}"
DAILY_BUCKET = {"bucket_name": "acme-calls", "bucket_region": "us-west-2", "assume_role_arn": ROLE,
                "allow_api_access": False}

Deployment = Callable[..., Any]


@pytest.fixture
def deployment(fake_fly: FakeFly, fake_daily: FakeDaily, tmp_path: Path) -> Deployment:
    @asynccontextmanager
    async def started(bucket: str | None, recording: str, rules: str = "") -> AsyncIterator[httpx.AsyncClient]:
        daily_env = {**fake_daily.env, **({"DAILY_RECORDINGS_BUCKET": bucket} if bucket else {})}
        rooms = DailyRooms(DailySettings.from_env(daily_env))
        settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600)
        env = {"RECORDING": recording, "RECORDING_DESTINATION": str(tmp_path), "RECORDING_RULES": rules}
        app = create_app(settings, env=env, machines=fly_harness(fake_fly).make(), rooms=rooms)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
            yield http
        await app.state.voicefleet.aclose()

    return started


def _start(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"createDailyRoom": True, "dailyRoomProperties": properties, **more}


async def test_cloud_recording_goes_into_the_deployments_bucket(deployment: Deployment, fake_daily: FakeDaily) -> None:
    async with deployment(BUCKET, "on") as api:
        response = await api.post("/start", json=_start({"enable_recording": "cloud",
                                                         "enable_transcription_storage": True}), headers=AUTH)
    assert response.status_code == 201, response.text
    config = fake_daily.rooms[response.json()["dailyRoom"].rsplit("/", 1)[1]]["config"]
    assert config["enable_recording"] == "cloud"
    assert config["recordings_bucket"] == DAILY_BUCKET
    assert (config["enable_transcription_storage"], config["transcription_bucket"]) == (True, DAILY_BUCKET)


@pytest.mark.parametrize(
    ("bucket", "recording", "start", "message"),
    [
        (None, "on", _start({"enable_recording": "cloud"}), "DAILY_RECORDINGS_BUCKET"),
        (None, "on", _start({"enable_transcription_storage": True}), "DAILY_RECORDINGS_BUCKET"),
        (BUCKET, "off", _start({"enable_recording": "cloud"}), "recording policy does not keep it"),
        (BUCKET, "consent", _start({"enable_recording": "cloud"}), "recording policy does not keep it"),
        (BUCKET, "on", _start({"enable_recording": "cloud"}, recording={"audio": "off"}), "policy does not keep"),
        (BUCKET, "on", _start({"enable_recording": "local"}), 'must be "cloud"'),
        (BUCKET, "on", _start({"recordings_bucket": DAILY_BUCKET}), "recordings_bucket: may not be set"),
    ],
)
async def test_cloud_recording_is_refused_without_the_bucket_or_the_policy(
        deployment: Deployment, fake_daily: FakeDaily, bucket: str | None, recording: str, start: dict[str, Any],
        message: str) -> None:
    async with deployment(bucket, recording) as api:
        response = await api.post("/start", json=start, headers=AUTH)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert fake_daily.rooms == {}


async def test_a_release_rule_holds_for_a_start_whose_release_is_chosen_later(deployment: Deployment,
                                                                                fake_daily: FakeDaily) -> None:
    """A start naming no release may get the canary's: the room records from its start, so a rule
    keeping no audio for any release refuses the cloud recording."""
    async with deployment(BUCKET, "on", "release:canary audio=off") as api:
        response = await api.post("/start", json=_start({"enable_recording": "cloud"}), headers=AUTH)
    assert response.status_code == 422, response.text
    assert "recording policy does not keep it" in response.json()["detail"]
    assert fake_daily.rooms == {}


@pytest.mark.parametrize("value", ["bucket=acme-calls,region=us-west-2",
                                   f"bucket=Acme_Calls,region=us-west-2,role={ROLE}",
                                   f"bucket=acme-calls,region=us-west-2,role={ROLE},extra=1",
                                   "bucket=acme-calls,region=us-west-2,role=arn:aws:iam::1:user/x"])
def test_a_malformed_bucket_setting_names_the_format(value: str) -> None:
    with pytest.raises(SettingsError, match="DAILY_RECORDINGS_BUCKET"):
        parse_recordings_bucket(value)


async def test_the_fake_refuses_what_daily_refuses(fake_daily: FakeDaily) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=fake_daily.env["DAILY_API_URL"], headers=headers) as http:
        unknown = await http.post("/rooms", json={"name": "a", "properties": {"enable_recordings": "cloud"}})
        bucketless = await http.post("/rooms", json={"name": "b", "properties": {
            "enable_recording": "cloud", "recordings_bucket": {"bucket_name": "x"}}})
        good = await http.post("/rooms", json={"name": "c", "properties": {
            "enable_recording": "cloud", "recordings_bucket": DAILY_BUCKET}})
    assert (unknown.status_code, bucketless.status_code, good.status_code) == (400, 400, 200)
    assert "enable_recordings" in unknown.json()["info"]
