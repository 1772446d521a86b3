"""`voicefleet eval` asks for the transport its caller speaks: against a deployment whose default is
Daily, a WebRTC scenario's start still asks for WebRTC, and one that serves Daily only refuses it,
naming TRANSPORTS, before any room or bot is made (the caller has no Daily media to join)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner, Result

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.fakes.daily import FakeDaily
from tests.fakes.server import serve
from tests.support.dispatcher_server import serving
from voicefleet.main import voicefleet

SCENARIO = 'name = "hours"\n[[turns]]\nsay = "What are your opening hours"\nexpect = { contains = ["open"] }\n'


def run_eval(url: str, path: Path) -> Result:
    return CliRunner().invoke(voicefleet, ["eval", str(path), "--url", url], prog_name="voicefleet",
                              env={"VOICEFLEET_URL": None, "VOICEFLEET_API_KEY": None, "VOICEFLEET_ADMIN_KEY": None})


async def test_a_deployment_serving_daily_only_is_told_to_serve_webrtc_and_makes_no_room(tmp_path: Path) -> None:
    (tmp_path / "hours.toml").write_text(SCENARIO)
    with serve(fake_daily := FakeDaily(), "/v1"):
        await _eval_against_daily_only(fake_daily, tmp_path)


async def _eval_against_daily_only(fake_daily: FakeDaily, tmp_path: Path) -> None:
    env = {**fake_daily.env, "TRANSPORTS": "daily", "LOCAL_BOT_COMMAND": " ".join(STANDIN_BOT), **STANDIN_LOCAL_BOT_ENV}
    app = create_app(Settings.from_env(env), env=env)
    try:
        async with serving(app) as port:
            result = await asyncio.to_thread(run_eval, f"http://127.0.0.1:{port}", tmp_path / "hours.toml")
    finally:
        await app.state.voicefleet.aclose()
    assert result.exit_code == 1, result.output
    assert "transport_not_offered" in result.output and "TRANSPORTS=daily,webrtc" in result.output, result.output
    assert fake_daily.rooms == {}  # no Daily session was started for a caller that cannot join it
