"""`GET /sessions/{id}` says a session is over as soon as its bot reported its end, with a real bot
process: the real bot host and a bot that takes seconds to exit after that (tests/bots/slow_exit.py),
launched by the real app in-process (the claim is the status it answers, not the dispatcher's process).
Its status had read the machine alone, `started` until the process was gone, seconds after the
timeline's `ended` (dispatcher/sessions/reported_end.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.support.dispatcher_server import in_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # a real bot host, ten seconds of session

SLOW_EXIT = Path(__file__).resolve().parents[2] / "bots" / "slow_exit.py"
SESSION_SECONDS = 10  # the least MAX_SESSION_SECONDS takes: the session ends by itself, `max_duration`


async def test_the_status_is_ended_once_the_timeline_has_the_bots_end_while_its_process_winds_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_FILE", str(SLOW_EXIT))  # the bot host's, from its environment
    env = {"RESERVE_MAX_IDLE": "0", "MAX_SESSION_SECONDS": str(SESSION_SECONDS)}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with in_process(app) as dispatcher:
        api = dispatcher.client
        started = await api.post("/start?wait=started", json={"body": {}})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]

        async def events() -> list[dict[str, Any]]:
            return list((await api.get(f"/sessions/{session_id}/timeline")).json().get("events", []))

        timeline = await events()
        for _ in range(1200):  # the session's 10 s and the bot's start, at any load
            if any(e.get("event") == "ended" for e in timeline):
                break
            await asyncio.sleep(0.1)
            timeline = await events()
        ended = next(e for e in timeline if e.get("event") == "ended")
        status = (await api.get(f"/sessions/{session_id}")).json()
        right_after = after = await events()

        for _ in range(600):  # then the machine's own end, which keeps it so
            if any(e.get("event") == "machine_ended" for e in after):
                break
            await asyncio.sleep(0.1)
            after = await events()
        final = (await api.get(f"/sessions/{session_id}")).json()

    assert ended.get("reason") == "max_duration" and ended.get("exit_code") == 0, ended
    # Read while the bot's process was still on its way out: the case, not a race lost to it.
    assert not any(e.get("event") == "machine_ended" for e in right_after), right_after
    assert status["status"] == "ended", (status, timeline)
    assert "offer_url" not in status, status  # nothing left to connect to
    assert final["status"] == "ended", final
    assert any(e.get("event") == "machine_ended" for e in after), after
