"""A trunk's calls through `python -m sipedge` to a real local dispatcher and its parrot, with SIPp as
the trunk: answered only once the bot has joined, the caller's words heard back over RTP, the
caller's BYE ending the session and the session's end sending BYE, a CANCEL freeing it before the
answer, and the refusals (403 for a
source no trunk allows, 404 for a number none serves, 488 for an offer without G.711)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.phone.conftest import speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_parrot_websocket import voiced
from tests.sip.caller_cue import CuedCaller, goes_on_uncued_after
from tests.sip.conftest import NUMBER, EdgeProcess
from tests.sip.loopback_rtp import LoopbackRtp, can_capture
from tests.sip.sipp import HERE, SippRun, run_sipp
from tests.support.audio import BOT_AUDIO_RMS, Pcm, echo_similarity, rms
from tests.support.http_client import api_client
from tests.support.ports import free_port_pair
from tests.support.processes import DispatcherProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a real dispatcher, the edge, a bot process importing Pipecat and Silero


def session_of(edge: EdgeProcess, call_id: str, timeout: float = 15.0) -> str | None:
    """The session the edge started for the call. Its line is written on the edge's loop, which may
    come after SIPp saw the call's last message (a CANCEL's 487 is PJSIP's own, at once)."""
    pattern = re.compile(rf"call {re.escape(call_id)} (?:answered )?\(session (\w+)\)")
    deadline = time.monotonic() + timeout
    while (found := pattern.search(edge.log())) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return found.group(1) if found else None


def call_id_of(messages: str) -> str:
    found = re.search(r"^Call-ID: (\S+)", messages, re.MULTILINE)
    assert found, messages[:2000]
    return found.group(1)


async def timeline(api: httpx.AsyncClient, session_id: str) -> dict[str, float]:
    """The session's events by name, each at its first time (epoch seconds)."""
    answer = await api.get(f"/sessions/{session_id}/timeline")
    assert answer.status_code == 200, answer.text
    events: dict[str, float] = {}
    for event in answer.json()["events"]:
        events.setdefault(event["event"], event["at"])
    return events


async def sip_ended(api: httpx.AsyncClient, session_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The session's `sip_ended` event (its SIP fields), once the edge told it."""
    events: list[dict[str, Any]] = []
    for _ in range(int(timeout * 10)):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        told: list[dict[str, Any]] = [{k: e[k] for k in ("by", "how", "status", "reason") if k in e}
                                      for e in events if e["event"] == "sip_ended"]
        if told:
            return told[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no sip_ended on {session_id}'s timeline: {events}")


def words_came_back(pcm: bytes) -> float:
    """How much of the caller's words (speech_8k, as SIPp plays them) `pcm` (8 kHz) holds, 0..1."""
    speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
    return echo_similarity(voiced(speech), np.frombuffer(pcm, dtype=np.int16), 8000)


CUE_MARGIN_SECONDS = 1.0  # before the scenario would hang up by itself: the cue must find it still waiting


async def heard_call(dispatcher: DispatcherProcess, edge: EdgeProcess, scenario: str, echoed_above: float
                     ) -> tuple[SippRun, LoopbackRtp]:
    """One call of `scenario` to a warm bot, with what the edge sent the caller read off loopback. The caller
    hangs up on the test's cue once its words came back above `echoed_above` (the test's own bar), so the call
    lasts as long as its echo takes; where they did not (yet) by the time the scenario goes on by itself, it
    hangs up then, uncued (tests/sip/caller_cue.py)."""
    if (why := can_capture()) is not None:
        pytest.skip(why)
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
    return await cued_once_heard(edge, scenario, echoed_above)


async def cued_once_heard(edge: EdgeProcess, scenario: str, echoed_above: float,
                          credential: tuple[str, str] | None = None) -> tuple[SippRun, LoopbackRtp]:
    """`heard_call`'s call to whatever bot the call's session gets (the caller may need CAP_NET_RAW:
    `can_capture`), answering a digest challenge with `credential` if given."""
    media_port = free_port_pair(2)  # SIPp's RTP and RTCP
    capture = LoopbackRtp(media_port)
    try:
        call = await cued_once(edge, scenario, media_port,
                               lambda: words_came_back(capture.pcm_as_sent()) > echoed_above, credential)
        await asyncio.to_thread(capture.wait_quiet)
    finally:
        capture.stop()
    assert call.returncode == 0, f"{call.output}\n{call.messages[-4000:]}\n{edge.log()[-3000:]}"
    return call, capture


async def cued_once(edge: EdgeProcess, scenario: str, media_port: int, ready: Callable[[], bool],
                    credential: tuple[str, str] | None = None) -> SippRun:
    """SIPp calling with `scenario` (its RTP on `media_port`; `credential`: run_sipp's), cued once answered and
    `ready()` (the caller is then waiting for its cue) unless the scenario would go on by itself first, counted
    from the edge's answer: then it goes on uncued (tests/sip/caller_cue.py)."""
    cued = CuedCaller()
    uncued = waits_from_answer(scenario) - CUE_MARGIN_SECONDS
    calling = asyncio.create_task(asyncio.to_thread(
        run_sipp, scenario, NUMBER, edge.sip_port, edge.workdir, media_port=media_port, sip_port=cued.sip_port,
        call_id=cued.call_id, credential=credential))
    while not calling.done():
        answered = answered_at(edge, cued.call_id)
        if answered is not None and time.time() >= answered + uncued:
            break
        if answered is not None and ready():
            cued.cue()
            break
        await asyncio.sleep(0.25)
    return await calling


def waits_from_answer(scenario: str) -> float:
    """`goes_on_uncued_after`, counted from the call's answer: the scenario pauses only once answered (else it
    is no scenario to cue by its answer)."""
    for step in ET.parse(HERE / f"{scenario}.xml").getroot():
        if step.tag == "pause":
            raise ValueError(f"{scenario}.xml pauses before its answer: cue it by SIPp's start")
        if step.tag == "recv" and step.get("response") == "200":
            return goes_on_uncued_after(scenario)
    raise ValueError(f"{scenario}.xml is never answered")


def answered_at(edge: EdgeProcess, call_id: str) -> float | None:
    """When the edge answered `call_id` (its log line's own time, however late the test reads it), epoch seconds."""
    found = re.search(rf"^(\S+ \S+) .*call {re.escape(call_id)} answered \(session", edge.log(), re.MULTILINE)
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp() if found else None


async def test_a_call_is_answered_once_its_bot_joined_and_the_caller_hears_its_words_back(
    parrot_dispatcher: DispatcherProcess, edge: EdgeProcess,
) -> None:
    """μ-law, as carriers offer it; A-law's way through the edge is tests/sip/test_reinvites.py's codec change
    (the edge then sends A-law and the words come back), its offers tests/sip/test_reinvite_offer.py's."""
    law = "ulaw"
    call, capture = await heard_call(parrot_dispatcher, edge, "call_echo", echoed_above=0.7)
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        session_id = session_of(edge, call_id_of(call.messages))
        assert session_id is not None, edge.log()
        events = await timeline(api, session_id)
        ringing, answered = call.answered_at(180), call.answered_at(200)
        assert call.statuses()[:3] == [100, 180, 200], call.statuses()  # Trying at once, then Ringing
        assert ringing is not None and answered is not None
        # Ringing while the session started; 200 OK only once its bot had joined (its media socket up).
        assert ringing <= events["joined"] <= answered, (ringing, events, answered)

        heard = np.frombuffer(capture.pcm(law), dtype=np.int16)
        # The parrot's greeting, before the echo (which starts 2.5 s in, after the caller's 4 s of speech).
        assert rms(heard[: 8000 * 5]) > BOT_AUDIO_RMS
        speech = Pcm(np.frombuffer(speech_8k(), dtype=np.int16), 8000)
        similarity = echo_similarity(voiced(speech), heard, 8000)
        # 1.00 while the host keeps up, 0.87 and more with silences slipped in at a load
        # average of 10; half the words, or all of them out of order, score 0.60.
        assert similarity > 0.7, f"the caller's words came back at {similarity:.2f}\n{edge.log()}"
        # The caller's BYE ended the session and stopped its bot.
        assert await wait_active_sessions(api, 0) == 0
        assert "machine_ended" in await timeline(api, session_id)


ANSWERED_SESSION = re.compile(r"answered \(session (\w+)\)")


async def next_answered(edge: EdgeProcess, seen: int, pattern: re.Pattern[str] = ANSWERED_SESSION,
                        timeout: float = 60.0) -> str:
    """What `pattern` takes (its group) from the edge's line of its next answered call, after the
    `seen` answered already: the call's session by default."""
    for _ in range(int(timeout * 10)):
        answered = pattern.findall(edge.log())
        if len(answered) > seen:
            return str(answered[seen])
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):  # where its threads wait, into its log (sipedge/__main__.py)
        os.kill(edge.process.pid, signal.SIGUSR1)
    await asyncio.sleep(1)
    raise AssertionError(f"no call answered within {timeout:g} s\n{edge.log()}")


async def answered_sipp_call(edge: EdgeProcess, scenario: str, pattern: re.Pattern[str] = ANSWERED_SESSION,
                             media_port: int | None = None, cued: CuedCaller | None = None
                             ) -> tuple[str, asyncio.Task[SippRun]]:
    """SIPp calling with `scenario` (that `cued` cues, if given), under way once the edge answered: what
    `pattern` takes from the edge's line of the answer (the session by default), and SIPp's run, to its end."""
    seen = len(pattern.findall(edge.log()))
    calling = cued.calling(edge, scenario, media_port) if cued is not None else asyncio.create_task(
        asyncio.to_thread(run_sipp, scenario, NUMBER, edge.sip_port, edge.workdir, media_port=media_port))
    return await next_answered(edge, seen, pattern), calling


async def test_a_call_cancelled_while_its_bot_starts_frees_its_session(
    cold_dispatcher: DispatcherProcess, cold_edge: EdgeProcess,
) -> None:
    """No reserve and a bot that takes seconds to start: the caller gives up after one second of
    ringing, by which time its session had been started."""
    async with api_client(base_url=cold_dispatcher.base_url, timeout=30) as api:
        call = run_sipp("call_cancelled", NUMBER, cold_edge.sip_port, cold_edge.workdir)
        assert call.returncode == 0, f"{call.output}\n{cold_edge.log()}"
        assert call.statuses()[-3:] == [200, 487, 487] or call.statuses()[-2:] == [200, 487], call.statuses()
        session_id = session_of(cold_edge, call_id_of(call.messages))
        assert session_id is not None, cold_edge.log()
        assert await wait_active_sessions(api, 0) == 0  # its bot's machine was stopped
        assert "machine_ended" in await timeline(api, session_id)
        assert await sip_ended(api, session_id) == {"by": "caller", "how": "cancel", "status": 487}


async def test_the_bot_is_told_the_calls_from_to_call_id_and_x_headers_and_a_session_stopped_hangs_it_up_with_bye(
    cold_dispatcher: DispatcherProcess, cold_edge: EdgeProcess, cold_reports: Path,
) -> None:
    """One call, answered once its (slow) bot joined: what the bot was told, then the session stopped through the
    API, which hangs the caller up with the edge's BYE (its scenario ends only with it, answered)."""
    async with api_client(base_url=cold_dispatcher.base_url, timeout=30) as api:
        session_id, calling = await answered_sipp_call(cold_edge, "call_hung_up_by_bot")
        try:
            # The bot writes what it was told as it starts, beside the edge's answer.
            report = cold_reports / f"{session_id}.json"
            told = json.loads(await asyncio.to_thread(
                wait_until, lambda: report.read_text() if report.exists() else "", f"the bot's report {report}",
                detail=cold_edge.log))
        finally:
            stopped = await api.delete(f"/sessions/{session_id}")
        assert stopped.status_code in (202, 204), stopped.text
        call = await calling  # its scenario ends only with the edge's BYE, answered
        assert call.returncode == 0, f"{call.output}\n{cold_edge.log()}"
        call_id = call_id_of(call.messages)
        assert session_of(cold_edge, call_id) == session_id, cold_edge.log()
        assert told["body"] == {"from": '"Caller" <sip:+14155550100@127.0.0.1>', "to": f"<sip:{NUMBER}@127.0.0.1>",
                                "call_id": call_id, "headers": {"X-Ticket": "T-1042"}}
        assert told["call_data"]["call_id"] == call_id  # Pipecat read the stream's start as a carrier's
        assert await wait_active_sessions(api, 0) == 0


@pytest.mark.parametrize(("scenario", "source", "number", "status"), [
    ("call_forbidden", "127.0.0.2", NUMBER, 403),
    ("call_unknown_number", "127.0.0.1", "+15550000000", 404),
    ("call_no_common_codec", "127.0.0.1", NUMBER, 488),
])
async def test_a_call_the_edge_cannot_take_is_refused_before_any_session(
    cold_dispatcher: DispatcherProcess, cold_edge: EdgeProcess, scenario: str, source: str, number: str, status: int,
) -> None:
    async with api_client(base_url=cold_dispatcher.base_url, timeout=30) as api:
        before = await session_ids(api)
        call = run_sipp(scenario, number, cold_edge.sip_port, cold_edge.workdir, source=source)
        assert call.returncode == 0, f"{call.output}\n{cold_edge.log()}"
        assert call.statuses()[-1] == status
        # Nothing was started or asked for. (An earlier test's session may still be ending meanwhile:
        # its status is not this call's doing.)
        assert await session_ids(api) == before


async def session_ids(api: httpx.AsyncClient) -> set[str]:
    answer = await api.get("/sessions")
    assert answer.status_code == 200, answer.text
    return {session["session_id"] for session in answer.json()["sessions"]}
