"""The app as `python -m dispatcher` builds it writes its own starts as metric lines when asked."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from dispatcher.wiring import running
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving


def lines_in(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"metricNamespace"' in line]


@pytest.mark.parametrize("mode", ["emf", "off"])
async def test_a_start_reaches_the_next_line_and_off_writes_none(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
    app = create_app(Settings(), env={"METRIC_LINES": mode, "METRIC_LINES_SECONDS": "1",
                                      "METRIC_NAMESPACE": "voicefleet/test"}, machines=machines, rooms=None)
    state = app.state.voicefleet
    # The app's own lifespan (the test server runs without it), which starts the writer.
    async with serving(app), running(state), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        assert (await client.post("/start", json={})).status_code == 201
        if mode == "off":
            await asyncio.sleep(1.5)  # more than one interval: still nothing
            assert lines_in(capsys.readouterr().out) == []
            return
        seen: list[dict] = []
        async with asyncio.timeout(15):
            while not any(line.get("Starts") for line in seen):
                await asyncio.sleep(0.1)
                seen += lines_in(capsys.readouterr().out)
        started = next(line for line in seen if line.get("Starts"))
        assert started["Starts"] == 1 and started["ActiveSessions"] >= 0 and started["Provider"] == "local"
        assert started["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "voicefleet/test"
        assert "StoreUp" not in started  # one process: no store to report
