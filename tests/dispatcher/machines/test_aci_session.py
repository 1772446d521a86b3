"""An ACI session end to end: `python -m dispatcher` with MACHINES=aci on the fake ARM, which runs a real
bot process per container group (voicefleet's own channel code: tests/replicas/redialling_bot.py) with
the group's environment, secure values included, as ACI runs the bot image.

The bot dials the channel with the credential its group was given; its hello is admitted because ARM
shows the group (aci/identity.py); it takes its session and answers the caller's offer. The session's
end deletes the group, which stops the bot. A group whose container dies mid-session reads `failed`.
Cold, and from the warm reserve (an idle group claimed by its tags).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from botchannel.contract import CHANNEL_PATH
from tests.fakes.arm_aci import FakeArmAci
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN, SessionApi

pytestmark = pytest.mark.slow  # a dispatcher and a bot process per case

REPO = Path(__file__).resolve().parents[3]
KEY = "aci-session-key-0123456789"
DEADLINE = 60.0


def dispatcher(tmp_path: Path, fake: FakeArmAci, **env: str) -> Iterator[DispatcherProcess]:
    port = free_port()
    channel_url = f"ws://127.0.0.1:{port}{CHANNEL_PATH}"

    def launch(group: str, group_env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{group}.log", "ab")  # noqa: SIM115 - the process keeps it
        return subprocess.Popen([sys.executable, "-m", "tests.replicas.redialling_bot"], cwd=REPO,
                                env={**os.environ, **group_env}, stdout=log, stderr=log)

    fake.launcher = launch
    settings = {**fake.env, "DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN, "BOT_CHANNEL_URL": channel_url,
                "BOT_CHANNEL_TOKEN": "d" * 40, "TRANSPORTS": "webrtc",
                "TURN_URLS": "turn:127.0.0.1:3478?transport=tcp", "TURN_SHARED_SECRET": "t" * 32,
                "MAX_SESSION_SECONDS": "600", "LOG_LEVEL": "info", **env}
    with run_dispatcher(tmp_path, settings, port=port) as running:
        yield running


@pytest.fixture
def cold(tmp_path: Path, fake_aci: FakeArmAci) -> Iterator[SessionApi]:
    for running in dispatcher(tmp_path, fake_aci, RESERVE_MAX_IDLE="0"):
        yield SessionApi(running, key=KEY, provider="aci", deadline=DEADLINE)


@pytest.fixture
def warm(tmp_path: Path, fake_aci: FakeArmAci) -> Iterator[SessionApi]:
    for running in dispatcher(tmp_path, fake_aci, RESERVE_MIN_IDLE="1", RESERVE_BUFFER="0", RESERVE_BURST="0",
                              RESERVE_MAX_IDLE="1"):
        yield SessionApi(running, key=KEY, provider="aci", deadline=DEADLINE)


def test_a_cold_session_runs_on_its_own_group_whose_bot_answers_and_ends_with_it_and_a_lost_one_reads_failed(
        cold: SessionApi, fake_aci: FakeArmAci) -> None:
    session_id = cold.started()
    name = f"vf-{session_id}"
    process = fake_aci.processes[name]
    assert cold.answered_by(session_id) == f"{session_id}/{process.pid}"  # the group's own process
    assert fake_aci.secure[name]["VOICEFLEET_SESSION_ID"] == session_id  # it came as a secure value

    cold.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    cold.wait_for("the bot process gone", lambda: process.poll() is not None)
    assert name not in fake_aci.standing()
    ended = cold.call("GET", f"/sessions/{session_id}").json()  # its group gone, the session index answers
    assert ended["status"] == "ended", ended

    # A second session on the same dispatcher, whose container dies under it: no goodbye.
    lost = cold.started()
    fake_aci.lose(f"vf-{lost}")
    cold.wait_for("the lost session failed",
                  lambda: cold.call("GET", f"/sessions/{lost}").json()["status"] == "failed")
    group = fake_aci.groups[f"vf-{lost}"]["properties"]["containers"][0]["properties"]
    assert group["instanceView"]["currentState"]["exitCode"] == 137


def test_a_start_claims_the_reserves_idle_group_instead_of_creating_one(
        warm: SessionApi, fake_aci: FakeArmAci) -> None:
    [idle] = warm.wait_for("a reserve group", lambda: [n for n in fake_aci.created if n.startswith("vf-idle-")])
    warm.wait_for("its bot waiting on the channel", lambda: warm.idle_bots() == 1)  # its hello admitted through ARM
    session_id = warm.started()
    assert fake_aci.groups[idle]["tags"]["voicefleet-session"] == session_id  # claimed by its tags
    assert "voicefleet-idle" not in fake_aci.groups[idle]["tags"]
    assert f"vf-{session_id}" not in fake_aci.created  # no cold create
    process = fake_aci.processes[idle]
    assert warm.answered_by(session_id) == f"{session_id}/{process.pid}"  # the idle group's bot serves it

    warm.call("DELETE", f"/sessions/{session_id}", (200, 202, 204))
    warm.wait_for("the claimed group's bot gone", lambda: process.poll() is not None)
    assert idle not in fake_aci.standing()  # deleted after its session: never reused
