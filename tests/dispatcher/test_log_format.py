"""LOG_FORMAT=json: one JSON object per line, each with the replica, and the session and trace it was
for; a local bot's own lines forwarded with its session (a real dispatcher and real bots)."""

from __future__ import annotations

import json
import re

import httpx

from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

QUICK_BOT = {"BOT_CONNECT_TIMEOUT_SECONDS": "2", "RESERVE_MAX_IDLE": "0"}
NOT_LOGGING = "voicefleet: open http"  # the local page's address, printed for the developer


def records(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.strip() and not line.startswith(NOT_LOGGING)]


def test_json_lines_carry_the_replica_and_each_sessions_id_and_trace(tmp_path):
    env = {**QUICK_BOT, "LOG_FORMAT": "json"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        answers = [httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30).json() for _ in range(2)]
        for answer in answers:
            exited = re.compile(rf"session {answer['session_id']}: bot pid \d+ exited")
            wait_until(lambda e=exited: e.search(dispatcher.log()), "the bots' exits", timeout=30,
                       detail=dispatcher.log)
        lines = records(dispatcher.log())  # every line parses: no text line slipped through
    assert {line["replica"] for line in lines} == {"local"}  # one process (with a store: REPLICA_ID)
    assert {"time", "level", "logger", "message", "session_id", "trace_id"} <= set(lines[0])
    for answer in answers:
        mine = [line for line in lines if line["session_id"] == answer["session_id"]]
        launched = next(line for line in mine if "launched" in line["message"])
        assert launched["trace_id"] == answer["trace_id"]
        # The bot's own lines, forwarded from its stderr with its session (and in JSON themselves).
        forwarded = [json.loads(line["message"].split("] ", 1)[1])
                     for line in mine if line["logger"] == "dispatcher.bot"]
        assert forwarded, [line["message"] for line in mine]
        assert {line["session_id"] for line in forwarded} == {answer["session_id"]}
        assert any(line["message"].startswith("session ending: connect_timeout") for line in forwarded), forwarded


def test_text_stays_the_default(tmp_path):
    with run_dispatcher(tmp_path, QUICK_BOT) as dispatcher:
        session = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30).json()["session_id"]
        wait_until(lambda: f"session {session}: bot pid" in dispatcher.log() and " exited (" in dispatcher.log(),
                   "the bot's exit", timeout=30, detail=dispatcher.log)
        log = dispatcher.log()
    assert f"INFO dispatcher.sessions.service: session {session} launched" in log
    assert f"INFO dispatcher.bot: [{session}] " in log  # its stderr, forwarded with its session
