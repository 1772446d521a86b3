"""A SIP call is never left open: its bot's process killed, or its session past its cap
(MAX_SESSION_SECONDS), the edge hangs the caller up with BYE. A real dispatcher (the echo bot, a
reserve of one, a 10 s cap), `python -m sipedge` and SIPp as the trunk; how soon the BYE comes is
measured in bench/sip_hang_up.py, not asserted here (the bound below only says it came)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.phone.conftest import phone_env, wait_active_sessions, wait_for_idle_bot
from tests.sip.conftest import NUMBER, EdgeProcess, run_edge
from tests.sip.sipp import SippRun, run_sipp
from tests.sip.test_calls import next_answered_session
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, bot processes importing Pipecat

CAP_SECONDS = 10  # the dispatcher's MAX_SESSION_SECONDS (its least)
HUNG_UP_WITHIN = 15.0  # not a timing claim: that the BYE came at all, on a loaded host


@pytest.fixture(scope="module")
def capped_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "MAX_SESSION_SECONDS": str(CAP_SECONDS)}
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
        seen = len(re.findall(r"answered \(session", edge.log()))
        calling = asyncio.create_task(asyncio.to_thread(run_sipp, scenario, NUMBER, edge.sip_port, edge.workdir))
        yield AnsweredCall(api, await next_answered_session(edge, seen), calling)


async def bye_received(calling: asyncio.Task[SippRun], edge: EdgeProcess) -> float:
    """When the caller got the edge's BYE (its scenario ends only with it, answered)."""
    call = await calling
    assert call.returncode == 0, f"{call.output}\n{edge.log()}"
    bye_at = call.received_at("BYE ")
    assert bye_at is not None, call.messages
    return bye_at


async def test_a_calls_bot_killed_hangs_its_caller_up_with_bye(
    capped_dispatcher: DispatcherProcess, capped_edge: EdgeProcess,
) -> None:
    async with answered_call(capped_dispatcher, capped_edge) as call:
        pid = bot_pid(capped_dispatcher, call.session_id)
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        bye_at = await bye_received(call.calling, capped_edge)
        assert bye_at - killed_at < HUNG_UP_WITHIN, (killed_at, bye_at)
        assert await wait_active_sessions(call.api, 0) == 0


async def test_a_call_past_its_sessions_cap_is_hung_up_with_bye(
    capped_dispatcher: DispatcherProcess, capped_edge: EdgeProcess,
) -> None:
    async with answered_call(capped_dispatcher, capped_edge) as call:
        bye_at = await bye_received(call.calling, capped_edge)
        events = (await call.api.get(f"/sessions/{call.session_id}/timeline")).json()["events"]
        [ended] = [e for e in events if e["event"] == "ended"]
        assert ended["reason"] == "max_duration", events
        assert bye_at - ended["at"] < HUNG_UP_WITHIN, (ended, bye_at)
        assert await wait_active_sessions(call.api, 0) == 0
