"""A deployment's reserve holds bots for the transport it serves: with `TRANSPORTS=webrtc` a Modal
or Fly start claims an idle bot instead of launching cold while the idle ones run on, billed.

Through `python -m dispatcher` against the fake Modal and the fake Fly, each running a real bot
process per Sandbox or machine (tests/replicas/redialling_bot.py: the bot's own config and channel
code, so its hello names the transport its launch values pick, as `python -m bot` does) in the
WebRTC image's environment (`BOT_TRANSPORT=webrtc`, which the launch values may override), and in
nothing of the test process's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botchannel.contract import CHANNEL_PATH
from tests.fakes.fly import FakeFly
from tests.fakes.modal_server import FakeModal
from tests.replicas.fly_bots import fly_bots
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN, METRICS_AUTH
from tests.support.waiting import wait_until

KEY = "reserve-transport-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
REPO = Path(__file__).resolve().parents[3]
TEST_ONLY = "VOICEFLEET_TEST_ONLY"  # in the test process alone: no machine's bot inherits it
WEBRTC_IMAGE_ENV = {"BOT_TRANSPORT": "webrtc"}  # images/bot.Dockerfile, target runtime-webrtc
WEBRTC_ONLY = {"DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN, "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc",
               "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SHARED_SECRET": "t" * 32,
               "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0",
               "RESERVE_MIN_HOT": "1", "LOG_LEVEL": "info"}


def metric(dispatcher: DispatcherProcess, line_start: str) -> float:
    """The sum of the /metrics lines starting with `line_start` (read with the admin key of METRICS_ADMIN)."""
    answer = httpx.get(f"{dispatcher.base_url}/metrics", headers=METRICS_AUTH, timeout=30)
    answer.raise_for_status()
    text = answer.text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def environment_names(pid: int) -> set[bytes]:
    return {entry.split(b"=", 1)[0] for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if entry}


def start_claims_the_idle_bot(dispatcher: DispatcherProcess, provider: str) -> str:
    """Wait for the idle bot's hello, start a session: it is a warm claim, not a cold launch."""
    idle = f'voicefleet_reserve_bots{{provider="{provider}",state="idle"}}'
    wait_until(lambda: metric(dispatcher, idle) == 1, "the idle bot on the channel",
               detail=lambda: dispatcher.log()[-4000:])
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=AUTH, timeout=60)
    assert answer.status_code == 201, f"{answer.text}\n{dispatcher.log()[-4000:]}"
    assert metric(dispatcher, f'voicefleet_reserve_claims_total{{outcome="warm_hit",provider="{provider}",') == 1
    assert metric(dispatcher, f'voicefleet_reserve_claims_total{{outcome="cold_miss",provider="{provider}",') == 0
    return str(answer.json()["sessionId"])


@pytest.fixture
def fake_modal_bots() -> Iterator[FakeModal]:
    image_env = {**WEBRTC_IMAGE_ENV, "PYTHONPATH": str(REPO)}
    modal = FakeModal(bot_command=[sys.executable, "-m", "tests.replicas.redialling_bot"], image_env=image_env)
    try:
        yield modal.start()
    finally:
        modal.close()


def test_a_webrtc_modal_deployment_claims_its_idle_sandbox(tmp_path: Path, fake_modal_bots: FakeModal,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_ONLY, "1")
    port = free_port()
    env = {**fake_modal_bots.env, **WEBRTC_ONLY, "BOT_CHANNEL_URL": f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
           "MODAL_POLL_SECONDS": "0.1"}
    with run_dispatcher(tmp_path, env, port=port) as dispatcher:
        session_id = start_claims_the_idle_bot(dispatcher, "modal")
        # An idle Sandbox serves it (the reserve then refills): no Sandbox of its own.
        [sandbox] = [s for s in fake_modal_bots.creates if s.tags.get("voicefleet_session") == session_id]
        assert sandbox.name.startswith("vf-idle-")
        assert not any(s.name == f"vf-{session_id}" for s in fake_modal_bots.creates)
        assert sandbox.env["BOT_TRANSPORT"] == "webrtc"
        assert sandbox.process is not None and TEST_ONLY.encode() not in environment_names(sandbox.process.pid)


def test_a_webrtc_fly_deployment_claims_its_idle_machine(tmp_path: Path, fake_fly: FakeFly,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_ONLY, "1")
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000  # /metrics lists; Fly's list limit is not tested here
    port = free_port()
    channel_url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    env = {"MACHINES": "fly", **fake_fly.env, **WEBRTC_ONLY, "BOT_CHANNEL_URL": channel_url,
           "BOT_IDENTITY_AUDIENCE": channel_url, "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100"}
    (tmp_path / "bots").mkdir()
    with fly_bots(fake_fly, {**WEBRTC_IMAGE_ENV, "BOT_CHANNEL_URL": channel_url}, tmp_path / "bots") as bots, \
            run_dispatcher(tmp_path, env, port=port) as dispatcher:
        session_id = start_claims_the_idle_bot(dispatcher, "fly")
        # An idle machine serves it (the reserve then refills): no machine of its own.
        [machine] = [m for m in list(fake_fly.machines.values())
                     if m["config"]["metadata"].get("voicefleet_session") == session_id]
        assert machine["name"].startswith("vf-idle-")
        assert not any(m["name"] == f"vf-{session_id}" for m in list(fake_fly.machines.values()))
        assert machine["config"]["env"]["BOT_TRANSPORT"] == "webrtc"
        assert TEST_ONLY.encode() not in environment_names(bots.pid_of(machine["id"]))
