"""StoreUp on the metric lines follows the store as `/healthz` reports it: a real redis-server with
the stack's own access rules, stopped and started under the app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.wiring import running
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.redis_server import RedisServer


async def store_up(state, capsys: pytest.CaptureFixture[str]) -> int | None:  # noqa: ANN001 - the app's state
    capsys.readouterr()
    await state.metric_lines.write()  # to stdout, as in production
    (main,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if '"metricNamespace"' in line and "Reason" not in line]
    return main.get("StoreUp")


async def test_store_up_is_1_then_0_when_the_store_stops_then_1_again(
    tmp_path: Path, store: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
    env = {**store.env, "DISPATCHER_API_KEYS": "k-0123456789abcdef", "METRIC_LINES": "emf",
           "REDIS_LEASE_SECONDS": "3"}  # a heartbeat every second: it notices the outage and its end
    app = create_app(env=env, machines=machines, rooms=None)
    state = app.state.voicefleet

    async def health() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return str((await client.get("/healthz")).json()["status"])

    async def until(status: str) -> None:
        async with asyncio.timeout(30):
            while await health() != status:
                await asyncio.sleep(0.1)

    async with running(state):
        await until("ok")
        assert await store_up(state, capsys) == 1
        store.stop()
        await until("degraded")
        assert await store_up(state, capsys) == 0
        store.start()
        await until("ok")
        assert await store_up(state, capsys) == 1
