"""The daily usage file in the team's bucket, across two real `python -m dispatcher` replicas on one
real redis-server (the AWS stack's store user) writing to one S3 bucket (moto in server mode): the
sessions of two keys, started and ended at either replica, are one file for the day, each key's line
once, the same bytes as `voicefleet usage --csv` for that day; and beside the recordings when it is
told to be."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner

from tests.fakes.s3_presigned import ACCESS_KEY, REGION, SECRET_KEY, s3_server
from tests.replicas.conftest import call, start_fleet
from tests.support.cloud_stores import s3_client
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # two real dispatchers, their bots, a redis-server and moto

ADMIN_KEY = "usage-files-admin-key-0123456789abc"
KEYS = {"team-a": "usage-files-team-a-key-0123456789", "team-b": "usage-files-team-b-key-0123456789"}
SESSIONS = {"team-a": 3, "team-b": 2}
TOKEN = "usage-files-deployment-secret-0123456"  # binds a named key's sessions to it at every replica


@pytest.fixture
def bucket() -> Iterator[tuple[str, Any]]:
    keys = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}
    with mock.patch.dict(os.environ, keys), s3_server() as url:
        client = s3_client(url)
        client.create_bucket(Bucket="team-billing")
        yield url, client


def stored(client: Any, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket="team-billing", Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def cli_csv(base_url: str, day: str) -> str:
    result = CliRunner().invoke(voicefleet, ["usage", "--csv", "--since", day, "--until", day], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.timeout(600)
def test_two_replicas_write_one_daily_file_equal_to_the_usage(tmp_path: Path, store: RedisServer,
                                                              bucket: tuple[str, Any]) -> None:
    url, client = bucket
    env = {"RESERVE_MAX_IDLE": "0", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "BOT_CHANNEL_TOKEN": TOKEN,
           "DISPATCHER_API_KEYS": ",".join(f"{name}:{key}" for name, key in KEYS.items()),
           "USAGE_FILES": "s3://team-billing/voice", "USAGE_FILE_SECONDS": "1", "AWS_ENDPOINT_URL_S3": url,
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}
    with start_fleet(tmp_path, store, 2, **env) as fleet:
        for name, count in SESSIONS.items():
            auth = {"Authorization": f"Bearer {KEYS[name]}"}
            for _ in range(count):
                started = call("POST", fleet.any(), "/start?wait=started", json={}, headers=auth)
                assert started.status_code == 201, started.text
                stopped = call("DELETE", fleet.any(), f"/sessions/{started.json()['session_id']}", headers=auth)
                assert stopped.status_code in (202, 204), stopped.text
        day = datetime.now(UTC).date().isoformat()
        key = f"voice/usage/{day}.csv"
        total = sum(SESSIONS.values())

        def counted() -> bool:
            body = stored(client, key)
            return body is not None and body.decode().splitlines()[-1].startswith(f"TOTAL,{total},")

        wait_until(counted, "every session in the day's usage file", timeout=60, detail=fleet.logs)
        wait_until(lambda: stored(client, key) == cli_csv(fleet.any(), day).encode(),
                   "the file as `voicefleet usage --csv` gives the day", timeout=30, detail=fleet.logs)
        lines = stored(client, key).decode().splitlines()  # type: ignore[union-attr]
        assert lines[0] == "key,sessions,minutes,cost_usd,not_priced"
        assert [line.split(",")[:2] for line in lines[1:]] == [["team-a", "3"], ["team-b", "2"], ["TOTAL", "5"]]
        listed = client.list_objects_v2(Bucket="team-billing", Prefix="voice/usage/")["Contents"]
        yesterday = f"voice/usage/{(datetime.now(UTC).date() - timedelta(days=1)).isoformat()}.csv"
        assert key in {o["Key"] for o in listed} <= {key, yesterday}  # one file a day, nothing else
        assert "usage file" not in fleet.logs()  # no write failed, no lease ran out


@pytest.mark.timeout(300)
def test_beside_the_recordings(tmp_path: Path, store: RedisServer) -> None:
    folder = tmp_path / "recordings"
    env = {"RESERVE_MAX_IDLE": "0", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "BOT_CHANNEL_TOKEN": TOKEN,
           "DISPATCHER_API_KEYS": f"team-a:{KEYS['team-a']}",
           "RECORDING": "on", "RECORDING_DESTINATION": str(folder), "USAGE_FILES": "recordings",
           "USAGE_FILE_SECONDS": "1"}
    with start_fleet(tmp_path, store, 1, **env) as fleet:
        auth = {"Authorization": f"Bearer {KEYS['team-a']}"}
        started = call("POST", fleet.any(), "/start?wait=started", json={}, headers=auth)
        assert started.status_code == 201, started.text
        call("DELETE", fleet.any(), f"/sessions/{started.json()['session_id']}", headers=auth)
        day_file = folder / "usage" / f"{datetime.now(UTC).date().isoformat()}.csv"
        wait_until(lambda: day_file.is_file() and day_file.read_text().splitlines()[-1].startswith("TOTAL,1,"),
                   "the session in the usage file beside the recordings", timeout=60, detail=fleet.logs)
        assert day_file.read_text().splitlines()[1].startswith("team-a,1,")
