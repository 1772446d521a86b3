"""A local deployment's Daily sessions start warm: its reserve bots serve the deployment's default
transport (`TRANSPORTS=daily`), and a Daily-only project's reserve bots (its Python has Daily's
extra, not SmallWebRTC's) take Daily sessions whatever the default. Before, every local reserve
bot was started for SmallWebRTC, so such a deployment's Daily sessions all started cold.

A real local dispatcher, real bot processes, Daily's REST API faked (tests/fakes/daily.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.dispatcher.machines.test_reserve_transport import metric
from tests.fakes.daily import FakeDaily
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.session_api import METRICS_ADMIN
from tests.support.venvs import venv_without
from tests.support.waiting import wait_until

KEY = "local-daily-reserve-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
DAILY_ONLY_BOT = Path(__file__).resolve().parents[2] / "bots" / "daily_only.py"
ONE_IDLE = {"DISPATCHER_API_KEYS": KEY, **METRICS_ADMIN,
            "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1", "RESERVE_BUFFER": "0",
            "RESERVE_BURST": "0", "RESERVE_MIN_HOT": "1", "BOT_FILE": str(DAILY_ONLY_BOT), "LOG_LEVEL": "info"}


def daily_start_claims_the_idle_bot(dispatcher: DispatcherProcess) -> None:
    idle = 'voicefleet_reserve_bots{provider="local",state="idle"}'
    wait_until(lambda: metric(dispatcher, idle) == 1, "the idle bot on the channel", timeout=120,
               detail=lambda: dispatcher.log()[-4000:])
    answer = httpx.post(f"{dispatcher.base_url}/start", json={"transport": "daily"}, headers=AUTH, timeout=60)
    assert answer.status_code == 201, f"{answer.text}\n{dispatcher.log()[-4000:]}"
    claims = 'voicefleet_reserve_claims_total{outcome="{}",provider="local",'
    assert metric(dispatcher, claims.replace("{}", "warm_hit")) == 1, dispatcher.log()[-4000:]
    assert metric(dispatcher, claims.replace("{}", "cold_miss")) == 0


def test_a_daily_deployments_reserve_bots_take_its_daily_sessions(fake_daily: FakeDaily, tmp_path: Path) -> None:
    env = {**fake_daily.env, **ONE_IDLE, "TRANSPORTS": "daily"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        daily_start_claims_the_idle_bot(dispatcher)


def test_a_daily_only_projects_reserve_bots_take_daily_sessions_where_webrtc_is_the_default(
    fake_daily: FakeDaily, tmp_path: Path
) -> None:
    python = venv_without(tmp_path / "venv", "aiortc")  # the project locks pipecat-ai[daily] alone
    env = {**fake_daily.env, **ONE_IDLE, "TRANSPORTS": "webrtc,daily", "BOT_PYTHON": str(python)}
    with run_dispatcher(tmp_path, env) as dispatcher:
        daily_start_claims_the_idle_bot(dispatcher)
        # Its warning says what the bot does, and advises nothing the settings already have.
        log = dispatcher.log()
        assert "until then this reserve bot takes daily sessions and phone calls" in log, log[-4000:]
        assert "out of the dispatcher's TRANSPORTS" not in log
