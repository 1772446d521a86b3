"""A SIP call is never left open: its bot's process killed, or its session past its cap
(MAX_SESSION_SECONDS), the edge hangs the caller up with BYE. A real dispatcher (the echo bot, a
reserve of one, a 10 s cap, recording on, lifecycle webhooks to a receiver process), `python -m
sipedge` and SIPp as the trunk; how soon the BYE comes is measured in bench/sip_hang_up.py, not
asserted here (the bound below only says it came). The call's SIP end (who hung up, how, the
trunk's Reason) is on the session's timeline, in its `session.ended` webhook and its report.json."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.phone.conftest import ended_timeline, phone_env, wait_active_sessions, wait_for_idle_bot
from tests.sip.conftest import EdgeProcess, run_edge
from tests.sip.sipp import SippRun
from tests.sip.test_calls import answered_sipp_call, sip_ended
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher, terminate
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, bot processes importing Pipecat

EDGE_BYE = {"by": "edge", "how": "bye", "reason": "the bot's side ended"}
CAP_SECONDS = 10  # the dispatcher's MAX_SESSION_SECONDS (its least)
HUNG_UP_WITHIN = 15.0  # not a timing claim: that the BYE came at all, on a loaded host


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"sip-hang-up-webhook-secret-bytes").decode()


@dataclass(frozen=True)
class Kept:
    recordings: Path  # RECORDING_DESTINATION: each session's report.json under it
    hooks: Path  # the webhook receiver's deliveries, one JSON line each
    hooks_port: int

    def report(self, session_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            paths = [path for path in self.recordings.rglob("report.json") if session_id in str(path)]
            return json.loads(paths[0].read_text()) if paths else None
        return self._waited(found, f"{session_id}'s report.json", timeout)

    def ended_hook(self, session_id: str, timeout: float = 30.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            lines = self.hooks.read_text().splitlines() if self.hooks.exists() else []
            return next((hook["data"] for hook in map(json.loads, lines) if hook.get("type") == "session.ended"
                         and hook["data"]["session_id"] == session_id), None)
        return self._waited(found, f"{session_id}'s session.ended webhook", timeout)

    @staticmethod
    def _waited(found: Callable[[], dict[str, Any] | None], what: str, timeout: float) -> dict[str, Any]:
        value = wait_until(found, what, timeout=timeout)
        assert value is not None
        return value


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kept]:
    folder = tmp_path_factory.mktemp("sip-kept")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "tests.replicas.webhook_receiver", str(port),
                                 str(folder / "hooks.jsonl")], env={**os.environ, "WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        yield Kept(folder / "recordings", folder / "hooks.jsonl", port)
    finally:
        terminate(receiver)


@pytest.fixture(scope="module")
def capped_dispatcher(kept: Kept, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "MAX_SESSION_SECONDS": str(CAP_SECONDS),
           "RECORDING": "on", "RECORDING_DESTINATION": str(kept.recordings),
           "WEBHOOK_URL": f"http://127.0.0.1:{kept.hooks_port}/hooks", "WEBHOOK_SECRET": WEBHOOK_SECRET}
    with run_dispatcher(tmp_path_factory.mktemp("sip-capped-dispatcher"), env) as running:
        yield running


@pytest.fixture(scope="module")
def capped_edge(capped_dispatcher: DispatcherProcess,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with run_edge(capped_dispatcher, tmp_path_factory.mktemp("sip-capped-edge")) as running:
        yield running


def bot_pid(dispatcher: DispatcherProcess, session_id: str) -> int:
    """The pid of the session's bot process, as the local provider logs it (started or claimed)."""
    found = re.search(rf"session {session_id}: (?:bot pid (\d+) starting|claimed reserve bot \S+ \(pid (\d+)\))",
                      dispatcher.log())
    assert found, dispatcher.log()[-3000:]
    return int(found.group(1) or found.group(2))


@dataclass(frozen=True)
class AnsweredCall:
    api: httpx.AsyncClient  # the dispatcher's API
    session_id: str
    calling: asyncio.Task[SippRun]  # SIPp's run, to its end


@contextlib.asynccontextmanager
async def answered_call(dispatcher: DispatcherProcess, edge: EdgeProcess,
                        scenario: str = "call_hung_up_by_bot") -> AsyncIterator[AnsweredCall]:
    """A SIPp call of `scenario` to a warm bot, under way once the edge answered it."""
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        session_id, calling = await answered_sipp_call(edge, scenario)
        yield AnsweredCall(api, session_id, calling)


async def bye_received(calling: asyncio.Task[SippRun], edge: EdgeProcess) -> float:
    """When the caller got the edge's BYE (its scenario ends only with it, answered)."""
    call = await calling
    assert call.returncode == 0, f"{call.output}\n{edge.log()}"
    bye_at = call.received_at("BYE ")
    assert bye_at is not None, call.messages
    return bye_at


async def test_a_calls_bot_killed_hangs_its_caller_up_with_bye(
    capped_dispatcher: DispatcherProcess, capped_edge: EdgeProcess, kept: Kept,
) -> None:
    async with answered_call(capped_dispatcher, capped_edge) as call:
        pid = bot_pid(capped_dispatcher, call.session_id)
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        bye_at = await bye_received(call.calling, capped_edge)
        assert bye_at - killed_at < HUNG_UP_WITHIN, (killed_at, bye_at)
        assert await wait_active_sessions(call.api, 0) == 0
        assert await sip_ended(call.api, call.session_id) == EDGE_BYE
    # Its bot sent no `ended`: its machine's end is the webhook's, pushed after a grace the edge's word beats.
    # (Its report is written as the machine ends, before the edge's BYE: it says the machine's end.)
    assert kept.ended_hook(call.session_id)["sip"] == EDGE_BYE


async def test_a_call_past_its_sessions_cap_is_hung_up_with_bye(
    capped_dispatcher: DispatcherProcess, capped_edge: EdgeProcess,
) -> None:
    async with answered_call(capped_dispatcher, capped_edge) as call:
        bye_at = await bye_received(call.calling, capped_edge)
        events = await ended_timeline(call.api, call.session_id)
        [ended] = [e for e in events if e["event"] == "ended"]
        assert ended["reason"] == "max_duration", events
        assert bye_at - ended["at"] < HUNG_UP_WITHIN, (ended, bye_at)
        assert await wait_active_sessions(call.api, 0) == 0
        assert await sip_ended(call.api, call.session_id) == EDGE_BYE


async def test_the_trunks_bye_and_its_reason_are_the_sessions_sip_end(
    capped_dispatcher: DispatcherProcess, capped_edge: EdgeProcess, kept: Kept,
) -> None:
    async with answered_call(capped_dispatcher, capped_edge, "call_bye_with_reason") as call:
        done = await call.calling
        assert done.returncode == 0, f"{done.output}\n{capped_edge.log()}"
        trunks = {"by": "caller", "how": "bye", "reason": 'Q.850;cause=16;text="Normal call clearing"'}
        assert await sip_ended(call.api, call.session_id) == trunks
    # Told before the call's stream closed: the bot's own `ended`, pushed at once, carries it.
    assert kept.ended_hook(call.session_id)["sip"] == trunks
    assert kept.report(call.session_id)["ended"]["sip"] == trunks
