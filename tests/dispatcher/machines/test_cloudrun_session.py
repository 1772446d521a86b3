"""A Cloud Run session end to end: `python -m dispatcher` with MACHINES=cloudrun on the fake jobs
API, which runs a real bot process per execution (voicefleet's own channel code:
tests/replicas/redialling_bot.py) with the execution's env, as Cloud Run runs the job's image.

The bot proves its execution with its service account's token from its own metadata server, takes
its session over the channel, answers the caller's offer; the session's end cancels the execution,
which stops the bot. An execution lost under a running session reads `failed`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs
from tests.fakes.fixtures import fake_cloud_run_jobs
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.waiting import wait_until

__all__ = ["fake_cloud_run_jobs"]
pytestmark = pytest.mark.slow  # a dispatcher and a bot process per case

REPO = Path(__file__).resolve().parents[3]
KEY = "cloudrun-session-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
DEADLINE = 60.0


@pytest.fixture
def dispatcher(tmp_path: Path, fake_cloud_run_jobs: FakeCloudRunJobs) -> Iterator[DispatcherProcess]:
    with run_deployment(tmp_path, fake_cloud_run_jobs, RESERVE_MAX_IDLE="0") as running:  # every start cold
        yield running


@pytest.fixture
def warm_dispatcher(tmp_path: Path, fake_cloud_run_jobs: FakeCloudRunJobs) -> Iterator[DispatcherProcess]:
    with run_deployment(tmp_path, fake_cloud_run_jobs, RESERVE_MIN_IDLE="1", RESERVE_MAX_IDLE="1",
                        RESERVE_BUFFER="0", RESERVE_BURST="0") as running:
        yield running


@contextlib.contextmanager
def run_deployment(tmp_path: Path, fake: FakeCloudRunJobs, **reserve: str) -> Iterator[DispatcherProcess]:
    port = free_port()
    channel_url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    fake.containers[0]["env"] = [{"name": "BOT_CHANNEL_URL", "value": channel_url}]  # the job's own env

    def launch(env: dict[str, str]) -> subprocess.Popen[bytes]:  # the job's task: the bot, its env as given
        log = open(tmp_path / f"{env['CLOUD_RUN_EXECUTION']}.log", "wb")  # noqa: SIM115 - the process keeps it
        return subprocess.Popen([sys.executable, "-m", "tests.replicas.redialling_bot"], cwd=REPO,
                                env={**os.environ, **env}, stdout=log, stderr=log)

    fake.launcher = launch
    env = {"MACHINES": "cloudrun", "DISPATCHER_API_KEYS": KEY, **fake.env, "BOT_IDENTITY_AUDIENCE": channel_url,
           "BOT_CHANNEL_URL": channel_url, "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc",
           "TURN_URLS": "turn:127.0.0.1:3478?transport=tcp", "TURN_SHARED_SECRET": "t" * 32,
           "MAX_SESSION_SECONDS": "600", "LOG_LEVEL": "info", **reserve}
    with run_dispatcher(tmp_path, env, port=port) as running:
        yield running


def until(what: str, condition: Any, dispatcher: DispatcherProcess) -> Any:
    return wait_until(condition, what, timeout=DEADLINE, detail=lambda: dispatcher.log()[-4000:])


def start(dispatcher: DispatcherProcess) -> str:
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=AUTH, timeout=DEADLINE)
    assert answer.status_code == 201, f"{answer.text}\n{dispatcher.log()[-4000:]}"
    return str(answer.json()["session_id"])


def session_status(dispatcher: DispatcherProcess, session_id: str) -> str:
    answer = httpx.get(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def test_a_session_runs_on_its_own_execution_whose_bot_answers_and_ends_with_it_and_a_lost_one_reads_failed(
    dispatcher: DispatcherProcess, fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    fake = fake_cloud_run_jobs
    session_id = start(dispatcher)
    [execution] = fake.of_session(session_id)
    name = str(execution["name"]).rsplit("/", 1)[-1]
    assert execution["template"]["timeout"] == f"{600 + 120}s" and execution["taskCount"] == 1
    offer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"},
                       headers=AUTH, timeout=DEADLINE)
    assert offer.status_code == 200, f"{offer.text}\n{dispatcher.log()[-4000:]}"
    assert offer.json()["bot"] == f"{session_id}/{fake.process(name).pid}"  # the execution's own process

    ended = httpx.delete(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert ended.status_code in (200, 202, 204), ended.text
    until("the execution cancelled", lambda: fake.execution(name).get("cancelledCount") == 1, dispatcher)
    until("the bot process gone", lambda: fake.process(name).poll() is not None, dispatcher)
    assert session_status(dispatcher, session_id) == "ended"

    # A second session on the same dispatcher, whose task dies under it: no goodbye.
    lost = start(dispatcher)
    [execution] = fake.of_session(lost)
    fake.lose(str(execution["name"]).rsplit("/", 1)[-1])
    until("the lost session failed", lambda: session_status(dispatcher, lost) == "failed", dispatcher)


def test_a_start_claims_the_idle_execution_whose_bot_waits_and_any_look_up_finds_it(
    warm_dispatcher: DispatcherProcess, fake_cloud_run_jobs: FakeCloudRunJobs, tmp_path: Path
) -> None:
    fake, dispatcher = fake_cloud_run_jobs, warm_dispatcher

    def idle_bot_waiting() -> str | None:
        for name, execution in list(fake.executions.items()):
            log = tmp_path / f"{name.rsplit('/', 1)[-1]}.log"  # the task logs under its CLOUD_RUN_EXECUTION
            if fake.env_of(execution).get("VOICEFLEET_IDLE_BOT") and log.exists() and '"idle"' in log.read_text():
                return name
        return None

    name = until("a reserve execution's bot waiting on the channel", idle_bot_waiting, dispatcher)
    session_id = start(dispatcher)
    # Claimed: no run of its own (a refill may have run the next reserve execution since).
    assert fake.of_session(session_id) == [] and all(
        fake.env_of(e).get("VOICEFLEET_IDLE_BOT") for e in list(fake.executions.values()))
    offer = httpx.post(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"},
                       headers=AUTH, timeout=DEADLINE)
    assert offer.status_code == 200, f"{offer.text}\n{dispatcher.log()[-4000:]}"
    assert offer.json()["bot"] == f"{session_id}/{fake.process(name).pid}"  # the reserve execution's own bot
    assert session_status(dispatcher, session_id) == "started"  # the claimed execution, found by its record
    ended = httpx.delete(f"{dispatcher.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
    assert ended.status_code in (200, 202, 204), ended.text
    until("the claimed execution cancelled", lambda: fake.execution(name).get("cancelledCount") == 1, dispatcher)
