"""LOG_FORMAT=json: one JSON object per line, each with the replica, and the session and trace it was
for; a local bot's own lines forwarded with its session (a real dispatcher and real bots)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from dispatcher.observability.log_format import KnownSessions
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

QUICK_BOT = {"BOT_CONNECT_TIMEOUT_SECONDS": "2", "RESERVE_MAX_IDLE": "0"}
NOT_LOGGING = "voicefleet: open http"  # the local page's address, printed for the developer


def records(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.strip() and not line.startswith(NOT_LOGGING)]


ERRING_BOT = '''
from loguru import logger

logger.warning("prompt file missing, using the default")
try:
    {}["OPENAI_API_KEY"]
except KeyError:
    logger.exception("no key")


async def bot(runner_args):
    pass
'''


@pytest.mark.parametrize("reserve", ["cold", "warm"])
def test_every_line_of_a_session_carries_its_id_trace_and_replica(tmp_path, reserve):
    """Cold, the bots run ERRING_BOT (a bot file's warnings and errors, at import: with their session), whose
    lines keep their level in JSON as test_a_bots_warnings_and_errors_keep_their_level's do in text."""
    idle = "0" if reserve == "cold" else "1"
    env = {**QUICK_BOT, "LOG_FORMAT": "json", "RESERVE_MAX_IDLE": idle, "RESERVE_MIN_IDLE": idle}
    if reserve == "cold":
        bot_file = tmp_path / "bot.py"
        bot_file.write_text(ERRING_BOT)
        env["BOT_FILE"] = str(bot_file)
    with run_dispatcher(tmp_path, env) as dispatcher:
        if reserve == "warm":
            wait_until(lambda: "connected (idle)" in dispatcher.log(), "an idle bot", timeout=60,
                       detail=dispatcher.log)
        answers = [httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30).json() for _ in range(2)]
        for answer in answers:
            # Its bot's exit and its channel's close: the session's last lines.
            done = [re.compile(rf"session {answer['session_id']}: bot pid \d+ exited"),
                    re.compile(rf"disconnected \({answer['session_id']}\)")]
            wait_until(lambda d=done: all(p.search(dispatcher.log()) for p in d), "the bots' ends", timeout=30,
                       detail=dispatcher.log)
        lines = records(dispatcher.log())  # every line parses: no text line slipped through
    assert {line["replica"] for line in lines} == {"local"}  # one process (with a store: REPLICA_ID)
    assert {"time", "level", "logger", "message", "session_id", "trace_id"} <= set(lines[0])
    if reserve == "warm":  # the first start claimed the idle bot (the second may find its replacement)
        assert any(f"session {answers[0]['session_id']}: claimed reserve bot" in line["message"] for line in lines)
    for answer in answers:
        session, trace = answer["session_id"], answer["trace_id"]
        # Every line about the session names it (a claimed reserve bot's channel and watcher too)...
        about = [line for line in lines if session in line["message"]]
        assert {line["session_id"] for line in about} == {session}, [
            (line["logger"], line["message"][:80]) for line in about if line["session_id"] != session]
        mine = [line for line in lines if line["session_id"] == session]
        # ... and every line of it carries its trace: the start's, its channel's, its secrets', its bot's.
        assert {line["trace_id"] for line in mine} == {trace}, [
            (line["logger"], line["message"][:80]) for line in mine if line["trace_id"] != trace]
        assert {"dispatcher.channel.bots", "dispatcher.bot", "dispatcher.sessions.service"} <= {
            line["logger"] for line in mine}
        # The bot's own lines, forwarded from its stderr with its session, each at the bot's level
        # with its message and the bot's machine id (a line of its JSON is not nested in ours).
        forwarded = [line for line in mine if line["logger"] == "dispatcher.bot"]
        assert forwarded and all(line["machine_id"] for line in forwarded), [line["message"] for line in mine]
        assert not any(line["message"].split("] ", 1)[1].startswith("{") for line in forwarded)
        ending = [line for line in forwarded if "session ending: connect_timeout" in line["message"]]
        assert ending and {line["level"] for line in ending} <= {"info", "warning"}, forwarded
        if reserve == "cold":
            warning = next(line for line in forwarded if "prompt file missing" in line["message"])
            error = next(line for line in forwarded if line["message"].endswith("no key"))
            assert (warning["level"], error["level"]) == ("warning", "error")
            assert "KeyError: 'OPENAI_API_KEY'" in error["exception"] and error["machine_id"]


def test_the_replicas_memory_of_session_traces_and_releases_is_bounded():
    known = KnownSessions(limit=3)
    for n in range(5):
        known.remember(f"s{n}", f"t{n}", f"r{n}")
    assert [known.trace_of(f"s{n}") for n in range(5)] == [None, None, "t2", "t3", "t4"]  # the oldest forgotten
    assert [known.release_of(f"s{n}") for n in range(5)] == [None, None, "r2", "r3", "r4"]
    known.remember("s2", None, None)  # seen again: the newest, what it knew kept
    known.remember("s5", "t5", "r5")
    assert (known.trace_of("s2"), known.release_of("s2"), known.trace_of("s3"), known.trace_of(None)) == (
        "t2", "r2", None, None)




def test_a_bots_warnings_and_errors_keep_their_level(tmp_path):
    """Text is the default: no LOG_FORMAT set. The same lines in JSON: the cold case of
    test_every_line_of_a_session_carries_its_id_trace_and_replica."""
    bot_file = tmp_path / "bot.py"
    bot_file.write_text(ERRING_BOT)
    with run_dispatcher(tmp_path, {**QUICK_BOT, "BOT_FILE": str(bot_file)}) as dispatcher:
        session = httpx.post(f"{dispatcher.base_url}/start", json={}, timeout=30).json()["session_id"]
        wait_until(lambda: f"session {session}: bot pid" in dispatcher.log() and " exited (" in dispatcher.log(),
                   "the bot's exit", timeout=30, detail=dispatcher.log)
        log = dispatcher.log()
    assert f"INFO dispatcher.sessions.service: session {session} launched" in log, "text is not the default"
    assert f"WARNING dispatcher.bot: [{session}] " in log and "prompt file missing" in log
    error = next(line for line in log.splitlines() if line.endswith("- no key"))
    assert f"ERROR dispatcher.bot: [{session}] " in error
    # The traceback's own lines follow at the error's level, not as INFO.
    assert f"ERROR dispatcher.bot: [{session}] KeyError: 'OPENAI_API_KEY'" in log, log
