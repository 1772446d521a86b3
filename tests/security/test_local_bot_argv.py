"""A hostile local bot looks for its siblings' session ids in their command lines.

`/proc/<pid>/cmdline` is readable by every process on the host, Landlock or not, and in keyless
local mode a session id is all the API asks for (`GET`/`DELETE /sessions/{id}`). So the launcher
puts nothing of a session on a bot's command line (dispatcher/machines/local/provider.py): the id
travels in the bot's environment, which its siblings cannot read. A real keyless
`python -m dispatcher` launching real `python -m bot` processes with a hostile bot file
(tests/security/bots/hostile.py) that reads every sibling's command line while it lives.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.machines.local import landlock
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher and two real bots

HOSTILE_BOT = Path(__file__).resolve().parent / "bots" / "hostile.py"
WAIT = 90.0


def reports(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:
            continue  # replaced as it was read
    return found


def cmdlines_read(report: dict[str, Any]) -> list[list[str]]:
    return [tried["cmdline"] for tried in report["siblings"].values() if "cmdline" in tried]


async def test_a_sibling_bot_finds_no_session_id_on_any_bots_command_line(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    env = {"BOT_FILE": str(HOSTILE_BOT), "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0",  # cold bots: the argv path
           "HOSTILE_REPORT_DIR": str(folder), "LOCAL_BOT_ENV": "HOSTILE_REPORT_DIR"}  # keyless, as local runs
    with run_dispatcher(tmp_path, env, ready_timeout=WAIT) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
            sessions = []
            for _ in range(2):
                started = await api.post("/start?wait=started", json={"body": {}})
                assert started.status_code == 201, started.text
                sessions.append(started.json()["session_id"])
            for _ in range(int(WAIT / 0.2)):  # the first bot has read the second's command line
                if any(cmdlines_read(r) for r in reports(folder)):
                    break
                await asyncio.sleep(0.2)
            for session_id in sessions:  # control: both sessions run
                assert (await api.get(f"/sessions/{session_id}")).json()["status"] in ("started", "joined")
    read = [cmdline for report in reports(folder) for cmdline in cmdlines_read(report)]
    assert any("bot" in cmdline for cmdline in read), f"no sibling's command line was read: {reports(folder)}"
    for cmdline in read:
        assert not any(session_id in " ".join(cmdline) for session_id in sessions), cmdline
    if landlock.abi_version() >= landlock.SCOPES_ABI:  # signals are scoped too (docs/security.md, Local bots)
        for report in reports(folder):
            assert report["signal_parent"] == "PermissionError", report["signal_parent"]
            signalled = [tried["signal"] for tried in report["siblings"].values() if "signal" in tried]
            assert signalled and set(signalled) <= {"PermissionError", "ProcessLookupError"}, signalled
