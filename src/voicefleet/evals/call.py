"""One scenario placed as a real call: `POST /start` (pinned to a release, marked as an eval), the
WebRTC caller connected to the session's offer URL (a phone scenario's call: phone_call.py), each turn
spoken and its answer heard, then the call's own checks, and nothing left running.

How the caller hears the bot: the bot's RTVI `bot-output` text events (what its TTS spoke, on the
data channel Pipecat's clients use) for the words, the audio it receives for the timing. An answer
is every `bot-output` between the end of the caller's speech and the quiet that ends the bot's turn
(answer_end.py), or nothing when the bot stays quiet for the turn's `listen_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from voicefleet.evals.answer_end import LONGEST_ANSWER, quiet_needed, texts, under_way
from voicefleet.evals.bot_blocked import blame_blocks
from voicefleet.evals.bot_latency import bot_figures
from voicefleet.evals.call_end import ended_reason, not_taken, went_quiet
from voicefleet.evals.checks import NO_HANG_UP, Answer, failures, unheard
from voicefleet.evals.judge import Judge, conversation_text
from voicefleet.evals.outcome import CallResult, Target, TurnResult, wall_clock
from voicefleet.evals.phases import Phases, audible
from voicefleet.evals.phone_call import converse_by_phone
from voicefleet.evals.scenario import Scenario
from voicefleet.evals.voice import speech_of
from voicefleet.loadtest.arrival_lag import late_at
from voicefleet.loadtest.audio import first_reply
from voicefleet.loadtest.lag import SpeechLate, own_latency
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.session_calls import json_object, refusal, session_url, stop_session
from voicefleet.loadtest.webrtc import CallEnded, WebRTCClient, post_json
from voicefleet.loadtest.within import within

CONNECT_TIMEOUT = 60.0  # a cold bot answers the offer once it runs
GREETING_WAIT = 30.0
START_AFTER_CANCEL = 10.0  # a start under way when the run is interrupted: its answer awaited this long
HANG_UP_WAIT = 15.0  # the bot's own end of the call, after its last answer


async def run_call(target: Target, scenario: Scenario, http: httpx.AsyncClient, run_id: str,
                   talked: Callable[[], None] = lambda: None) -> CallResult:
    """Places the scenario's call and judges it; never raises. Cancelled (Ctrl-C), it stops the call and
    returns it marked interrupted, so the run's report still has it.

    `talked` is called once the caller has hung up: the runner's next call starts then, while this
    one's session is read, its rubrics judged (an LLM's answers) and its session stopped (a local
    bot's stop waits for its process to exit: a second at a load of 15), instead of after them."""
    result = CallResult(scenario.name, scenario.source)
    phases = result.phases
    try:
        with phases.timed("start"):  # a SIP call is its own start (the edge asks), a WhatsApp call's its offer
            answer = {"body": eval_marker(run_id, scenario)} if scenario.transport in ("sip", "whatsapp") else \
                await _start(target, scenario, http, run_id, result)
        if answer is not None:
            if scenario.on_phone:
                await converse_by_phone(target, scenario, answer, http, result)
            else:
                await _converse(target, scenario, answer, http, result)
            _free(phases, talked)
            with phases.timed("after"):
                recorded = await _session_after(target, http, result)
                if scenario.call.no_error and recorded:
                    result.problems.append(f"the session recorded an error: {recorded}")
                if target.judge is not None and not result.problems:
                    await _judge(target.judge, scenario, http, result)
    except SpeechLate as late:  # the caller's own lag: inconclusive (CallResult.keeps_time), not the bot's fault
        result.caller_behind = max(result.caller_behind, late.behind)
        result.problems.append(f"the caller fell behind real time: {late}"[:300])
    except Exception as error:  # the caller's own fault: this call's failure, never the run's end
        result.problems.append(f"the caller failed: {type(error).__name__}: {error}"[:300])
    except asyncio.CancelledError:  # Ctrl-C: reported as what it is, once the session is stopped below
        result.interrupted = True
        result.problems.append(f"interrupted during turn {len(result.turns) + 1}: the run was stopped")
    finally:
        _free(phases, talked)
        with phases.timed("stop"):
            await _stop(target, http, result)
            result.ended_at = wall_clock(time.monotonic())
            if not result.interrupted:  # the bot host reports its figures as its session ends
                with contextlib.suppress(asyncio.CancelledError):  # Ctrl-C now: the call is reported without them
                    figures = await bot_figures(target, http, result.session_id)
                    result.bot_latencies_ms, result.bot_stalls, result.bot_blocks = figures
                    blame_blocks(result)
        result.seconds = time.monotonic() - phases.began
    return result


def _free(phases: Phases, talked: Callable[[], None]) -> None:
    if phases.slot is None:
        phases.freed()
        talked()


def eval_marker(run_id: str, scenario: Scenario) -> dict[str, Any]:
    """What tells the bot which run and scenario it serves (its body's `eval`)."""
    return {"eval": {"run": run_id, "scenario": scenario.name}}


async def _start(target: Target, scenario: Scenario, http: httpx.AsyncClient, run_id: str,
                 result: CallResult) -> dict[str, Any] | None:
    # `eval`: the dispatcher keeps the session out of the rollback's judge and the cost figures; the
    # body's marker tells the bot which run and scenario it serves.
    body: dict[str, Any] = {"body": eval_marker(run_id, scenario), "eval": True}
    # Named, not left to the deployment's default: a Daily-first one still starts a WebRTC session for
    # this caller, and one without WebRTC says so (TRANSPORTS) instead of making a room nobody joins.
    # A phone call's token carries the mark and the pin to the session the stream opens.
    body["transport"] = scenario.transport
    if target.release:
        body["release"] = target.release
    posting = asyncio.ensure_future(http.post(f"{target.base_url}/start", json=body, headers=target.headers()))
    try:
        response = await asyncio.shield(posting)
    except asyncio.CancelledError:  # Ctrl-C mid-start: the session the start made is still learnt, to be stopped
        with contextlib.suppress(Exception):
            started = json_object(await within(posting, START_AFTER_CANCEL))
            result.session_id = started.get("session_id") or started.get("sessionId")
        raise
    except httpx.TransportError as error:
        result.problems.append(f"POST /start: {type(error).__name__} {error}".strip())
        return None
    answer = json_object(response)
    if not response.is_success:
        code, message = refusal(response)
        result.problems.append(f"the start was refused ({response.status_code} {code}): {message}")
        return None
    result.session_id = answer.get("session_id") or answer.get("sessionId")  # a call token's answer: sessionId
    result.release = answer.get("release")
    return answer


async def _converse(target: Target, scenario: Scenario, answer: dict[str, Any], http: httpx.AsyncClient,
                    result: CallResult) -> None:
    phases = result.phases
    url = offer_url(target.base_url, answer)

    async def signal(offer: dict[str, Any]) -> dict[str, Any]:  # the offer's answer, timed as its own phase
        with phases.timed("offer"):
            return await post_json(url, offer, headers=target.headers())

    client = WebRTCClient(url, headers=target.headers(), ice_config=answer.get("iceConfig"),
                          connect_timeout=CONNECT_TIMEOUT, signal=signal)
    try:
        connecting = time.monotonic()
        await client.connect()
        phases.add("connect", time.monotonic() - connecting - phases.seconds.get("offer", 0.0))
    except Exception as error:  # an offer refused, ICE that never came up: the call's failure
        result.problems.append(f"the caller could not connect: {type(error).__name__}: {error}"[:300])
        await client.close()
        return
    except asyncio.CancelledError:  # interrupted while connecting: hung up all the same
        await client.close()
        raise
    try:
        # A bot that waits to be spoken to is spoken to once it stayed silent `speak_first_after`, unless
        # the scenario expects a greeting: then the caller waits for it.
        begin = None if scenario.call.greeting is not None else target.speak_first_after
        greeting = await _hear(client, since=0, listen=GREETING_WAIT, phases=phases, greeting=True, begin_within=begin)
        if scenario.call.greeting is not None:
            if problems := failures(scenario.call.greeting, greeting):
                result.problems.append(f"greeting: {problems[0]}")
        ended_at: int | None = None  # the turn under which the call ended
        for number, turn in enumerate(scenario.turns, 1):
            if ended_at is not None:
                result.turns.append(not_taken(turn.said))
                continue
            with phases.timed("synthesis"):
                speech = speech_of(turn.say, turn.wav, scenario.source)
            seen, turn_began, began_at = len(client.rtvi_messages), time.monotonic(), time.time()
            try:
                with phases.timed("speaking"):  # at once: the answer's quiet already kept the turns apart
                    await client.talk(speech, listen_seconds=0, lead_seconds=0)
            except CallEnded:  # the bot hung up (or crashed) before the caller's speech was all sent
                heard = Answer("", None)
            else:
                phases.caller_speech += speech.seconds
                result.caller_behind = max(result.caller_behind, client.mic.behind())
                heard = await _hear(client, since=seen, listen=turn.listen_ms / 1000, phases=phases,
                                    turn_began=turn_began)
            problems = failures(turn.expect, heard)
            quiet = (lambda since=turn_began: went_quiet(client.recording.times, since)) \
                if any(unheard(p) for p in problems) else None  # a lost connection is told ~30 s on
            if problems and (end := await ended_reason(target, http, result.session_id, number, quiet=quiet,
                                                       hung_up=client.ended.is_set(), caller_end=client.ended)):
                problems, ended_at = [end.reason, *problems], number
                result.lost_at = number if end.lost else None
            spoken = client.mic.last_speech_at  # the answer's first audio, on the wall clock (bot_behind.py)
            replied_at = None if heard.latency_ms is None or spoken is None or spoken < turn_began \
                else wall_clock(spoken) + heard.latency_ms / 1000
            result.turns.append(TurnResult(turn.said, heard.text, heard.latency_ms, problems, heard.caller_as_heard,
                                           began_at, replied_at, heard.arrived_late))
        if scenario.call.bot_ends is not None and ended_at is None:
            with phases.timed("hang_up"):
                ended = await _bot_hung_up(client)
            if ended and not scenario.call.bot_ends:
                result.problems.append("the bot ended the call, which it should not")
            elif not ended and scenario.call.bot_ends:
                result.problems.append(NO_HANG_UP)
    finally:
        with phases.timed("close"):
            await client.close()


async def _judge(judge: Judge, scenario: Scenario, http: httpx.AsyncClient, result: CallResult) -> None:
    """Each rubric asked of the judge about the call as far as it went: a turn's about the turns up to it,
    the call's about all of them. A rubric the judge does not pass is that turn's (or the call's) failure."""
    said = [(turn.said, turn.heard) for turn in result.turns]
    for index, (turn, outcome) in enumerate(zip(scenario.turns, result.turns, strict=False)):
        if turn.expect.rubric is not None:
            verdict = await judge.verdict(http, turn.expect.rubric, conversation_text(said[:index + 1]))
            if not verdict.passed:
                outcome.problems.append(f"rubric {turn.expect.rubric!r}: {verdict.reason}")
    if scenario.call.rubric is not None:
        verdict = await judge.verdict(http, scenario.call.rubric, conversation_text(said))
        if not verdict.passed:
            result.problems.append(f"rubric {scenario.call.rubric!r}: {verdict.reason}")


async def _hear(client: WebRTCClient, *, since: int, listen: float, phases: Phases,
                greeting: bool = False, turn_began: float | None = None, begin_within: float | None = None
                ) -> Answer:
    """What the bot said from RTVI message `since` on, until it stopped speaking and stayed quiet (or,
    with `begin_within`, nothing when it has not begun by then); the latency of a turn (begun at
    `turn_began`) from the end of its own speech."""
    spoke_at = time.monotonic()
    # A turn of silence sends no loud block, so the mic's last speech is the previous turn's: the
    # previous answer would count as this turn's reply. Such a turn is timed from its audio's end.
    speech_end = client.mic.last_speech_at
    if turn_began is not None and (speech_end is None or speech_end < turn_began):
        speech_end = spoke_at
    deadline = spoke_at + listen
    begin_by = None if begin_within is None else spoke_at + begin_within
    quiet_since: float | None = None
    began_speaking: float | None = None
    # Woken by each RTVI event, or when the quiet is over: a poll every 50 ms ended each answer up to
    # 50 ms late, and read the messages 20 times a second through every answer.
    while not client.ended.is_set():  # a hang-up ends the answer
        now = time.monotonic()
        count = len(client.rtvi_messages)
        messages = client.rtvi_messages[since:count]
        # Past the turn's wait, only an answer its events say is still coming is heard on (answer_end.py).
        if now >= deadline and not (now < deadline + LONGEST_ANSWER and under_way(messages)):
            break
        if began_speaking is None and any(m.get("type") == "bot-started-speaking" for m in messages):
            began_speaking = now
        quiet = quiet_needed(messages)
        wake = deadline if now < deadline else deadline + LONGEST_ANSWER
        if quiet is not None:
            quiet_since = quiet_since or now
            if now - quiet_since >= quiet:
                break
            wake = min(wake, quiet_since + quiet)
        else:
            quiet_since = None
        if began_speaking is None and begin_by is not None:
            if now >= begin_by:
                if not audible(client.recording.times, client.recording.levels, after=spoke_at):
                    break  # silent so far: the caller speaks first
                begin_by = None  # audio without RTVI events: heard out as before
            else:
                wake = min(wake, begin_by)
        await client.rtvi_after(count, wake - now)
    _heard_phases(phases, spoke_at, began_speaking, quiet_since, greeting=greeting)
    phases.bot_speech += audible(client.recording.times, client.recording.levels, after=spoke_at)
    text = " ".join(texts(client.rtvi_messages[since:], "bot-output"))
    latency = arrived_late = None
    if turn_began is not None and speech_end is not None:
        reply = first_reply(client.recording.times, client.recording.levels, speech_end)
        # Less the caller's own lag meanwhile: its silence reached the bot late, or it read the answer late.
        latency = None if reply is None else own_latency(client.mic.lag, speech_end, reply.start) * 1000
        arrived_late = late_at(client.recording, spoke_at, None if reply is None else reply.start)
    transcripts = " | ".join(texts(client.rtvi_messages[since:], "user-transcription"))
    return Answer(" ".join(text.split()), latency, transcripts, arrived_late)


def _heard_phases(phases: Phases, spoke_at: float, began_speaking: float | None, quiet_since: float | None,
                  *, greeting: bool) -> None:
    """An answer's time as the phases it went through: waited for, spoken, then the quiet that ended it."""
    ended = time.monotonic()
    began_speaking = began_speaking or ended
    stopped = quiet_since or ended
    phases.add("greeting_wait" if greeting else "reply_wait", began_speaking - spoke_at)
    phases.add("greeting" if greeting else "bot_speaking", stopped - began_speaking)
    phases.add("quiet", ended - stopped)


async def _bot_hung_up(client: WebRTCClient) -> bool:
    """Whether the bot ended the call within HANG_UP_WAIT: woken by the connection's state change (a poll
    every 100 ms saw each hang-up up to 100 ms late)."""
    ended = asyncio.Event()

    def check() -> None:
        if client.pc.connectionState in ("closed", "failed", "disconnected"):
            ended.set()

    client.pc.on("connectionstatechange", check)
    try:
        check()
        async with asyncio.timeout(HANG_UP_WAIT):
            await ended.wait()
    except TimeoutError:
        return False
    finally:
        client.pc.remove_listener("connectionstatechange", check)
    return True


async def _session_after(target: Target, http: httpx.AsyncClient, result: CallResult) -> str | None:
    """The error the session recorded, if any; its release too where the start's answer did not say it
    (a phone call's session exists only once its stream connected)."""
    if result.session_id is None:
        return None
    try:
        response = await http.get(session_url(target.base_url, result.session_id), headers=target.headers())
    except httpx.TransportError:
        return None
    session = json_object(response)
    result.release = result.release or session.get("release")
    error = session.get("error")
    return str(error) if error else None


async def _stop(target: Target, http: httpx.AsyncClient, result: CallResult) -> None:
    """A call is never left running: its session is stopped whatever ended the scenario."""
    await stop_session(http, target.base_url, result.session_id, target.headers())
