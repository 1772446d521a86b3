"""A session through `python -m dispatcher` with `MACHINES=modal`: the real `modal` client against the
fake Modal, whose Sandboxes run real bot processes (the stand-in bot) that dial the dispatcher's
channel with the credential their Sandbox's Secret holds. Cold, and from the warm reserve (hot tier)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT
from tests.dispatcher.machines.test_reserve_transport import metric
from tests.fakes.daily import FakeDaily
from tests.fakes.modal_server import TERMINATED, FakeModal
from tests.support.cold_bot import channel_url
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN

KEY = "modal-session-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeModal]:
    # The stand-in records each session it was assigned (STANDIN_RECORD_DIR): its values came over the channel.
    (tmp_path / "records").mkdir()
    image_env = {"STANDIN_MODE": "serve", "PYTHONPATH": str(REPO), "STANDIN_RECORD_DIR": str(tmp_path / "records")}
    modal = FakeModal(bot_command=list(STANDIN_BOT), image_env=image_env).start()
    try:
        yield modal
    finally:
        modal.close()


def dispatcher(tmp_path: Path, fake: FakeModal, daily: FakeDaily, **env: str) -> DispatcherProcess:
    port = free_port()
    return run_dispatcher(tmp_path, {**fake.env, **daily.env, "DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN,  # type: ignore[return-value]
                                     "BOT_CHANNEL_TOKEN": "c" * 40, "BOT_CHANNEL_URL": channel_url(port),
                                     "MODAL_POLL_SECONDS": "0.1", **env}, port=port)


def until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def assigned(tmp_path: Path, session_id: str) -> dict[str, object] | None:
    """What the Sandbox's bot recorded once its session's values reached it over the channel."""
    path = tmp_path / "records" / f"{session_id}.json"
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None


def test_a_cold_session_runs_its_bot_in_a_sandbox_that_a_stop_terminates(
    tmp_path: Path, fake: FakeModal, fake_daily: FakeDaily
) -> None:
    with dispatcher(tmp_path, fake, fake_daily, RESERVE_MAX_IDLE="0") as running:
        started = httpx.post(f"{running.base_url}/start", json={"body": {"persona": "x"}}, headers=AUTH, timeout=30)
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        record = until(lambda: assigned(tmp_path, session_id))  # the Sandbox's bot dialled in, took its assign
        assert record["body"] == '{"persona":"x"}'
        status = httpx.get(f"{running.base_url}/sessions/{session_id}", headers=AUTH, timeout=10).json()
        assert status["status"] == "started"
        [sandbox] = fake.creates
        assert sandbox.name == f"vf-{session_id}" and sandbox.process is not None
        assert sandbox.process.poll() is None
        assert "DAILY_TOKEN" not in sandbox.env  # the token came over the channel
        stopped = httpx.delete(f"{running.base_url}/sessions/{session_id}", headers=AUTH, timeout=30)
        assert stopped.status_code == 204, stopped.text
        until(lambda: sandbox.result is not None)
        assert sandbox.result.status == TERMINATED
        assert sandbox.process.wait(10) != 0


def test_a_start_claims_the_reserves_idle_sandbox_instead_of_creating_one(
    tmp_path: Path, fake: FakeModal, fake_daily: FakeDaily
) -> None:
    # Idle bots serve the default transport, WebRTC here (the stand-in's hello says SmallWebRTC too).
    with dispatcher(tmp_path, fake, fake_daily, RESERVE_MIN_IDLE="1", RESERVE_BUFFER="0", RESERVE_BURST="0",
                    RESERVE_MAX_IDLE="1", TRANSPORTS="webrtc,daily", TURN_URLS="turn:turn.example.com:3478",
                    TURN_SHARED_SECRET="t" * 40) as running:
        idle = until(lambda: [s for s in fake.creates if s.name.startswith("vf-idle-")])
        idle_bots = 'voicefleet_reserve_bots{provider="modal",state="idle"}'
        until(lambda: metric(running, idle_bots) == 1)  # its bot dialled in and waits on the channel
        started = httpx.post(f"{running.base_url}/start", json={"transport": "webrtc", "body": {"persona": "x"}},
                             headers=AUTH, timeout=30)
        assert started.status_code == 201, started.text
        session_id = started.json()["sessionId"]  # a WebRTC start answers as Pipecat's runner does
        until(lambda: assigned(tmp_path, session_id))
        claimed = [s for s in fake.creates if s.tags.get("voicefleet_session") == session_id]
        assert [s.id for s in claimed] == [idle[0].id]  # the idle Sandbox serves it: no cold create
        assert not any(s.name == f"vf-{session_id}" for s in fake.creates)
