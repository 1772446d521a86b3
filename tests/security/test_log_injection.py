"""Finding 11: values a bot chose cannot forge lines in the dispatcher's log."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botchannel.contract import Hello
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.security.conftest import WAIT, dial, stolen_credential
from tests.support.processes import DispatcherProcess, children_of, run_dispatcher

FORGED = "2026-11-22 12:00:00,000 WARNING dispatcher.sessions: FORGED LOG LINE"


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[DispatcherProcess]:
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
           "STANDIN_MODE": "serve", "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as running:
        yield running


async def test_a_bot_chosen_machine_id_with_newlines_forges_no_log_line(dispatcher: DispatcherProcess) -> None:
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, timeout=WAIT)
    assert answer.status_code == 201
    session_id = answer.json()["session_id"]
    [bot] = children_of(dispatcher.process.pid)
    url = dispatcher.base_url.replace("http://", "ws://") + "/bots/channel"
    # A hello the dispatcher logs whether it admits it or not.
    await dial(url, stolen_credential(bot), Hello(machine_id=f"x\n{FORGED}", session_id=session_id))
    await dial(url, stolen_credential(bot), Hello(machine_id="x", session_id=f"{session_id}\r\n{FORGED}"))
    httpx.get(f"{dispatcher.base_url}/healthz", timeout=WAIT)  # the log is written by now

    lines = dispatcher.log().splitlines()
    assert any(f"local-{session_id}" in line for line in lines)  # control: the log is this run's
    assert not [line for line in lines if line.startswith(FORGED)], "a bot wrote its own log line"
