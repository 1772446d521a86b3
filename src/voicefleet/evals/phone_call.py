"""A scenario's call on a phone line: the load test's phone caller (loadtest/phone_line.py) on the
session's media stream, in its carrier's own messages (loadtest/carrier_frames.py: Twilio, Telnyx,
Plivo or Exotel), or a SIP call through the SIP edge (loadtest/sip_line.py, its session named by the
edge's answer), each turn spoken (or its keys pressed, as the carrier's DTMF events) and its
answer timed from the audio the caller hears; once the caller has hung up and the session has ended,
the bot's words from the session's transcript (phone_words.py), checked turn by turn.

Why the transcript and not a recogniser in the caller: a carrier's stream carries audio only, and a
recogniser that hears any bot's words well enough to check them exactly does not fit in the command
(docs/evals.md says what was measured). The transcript is the bot's own text, as exact as the RTVI
events a WebRTC call reads, and costs only that the deployment keeps it (RECORDING_TRANSCRIPT).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from voicefleet.evals.call_end import ended_reason, not_taken
from voicefleet.evals.checks import NO_HANG_UP, Answer, failures
from voicefleet.evals.outcome import CallResult, Target, TurnResult, wall_clock
from voicefleet.evals.phone_words import Heard, laid_on_turns, transcript_lines
from voicefleet.evals.scenario import Scenario
from voicefleet.evals.voice import speech_of
from voicefleet.loadtest.audio import first_reply, reply_heard
from voicefleet.loadtest.carrier_frames import FRAMINGS
from voicefleet.loadtest.lag import own_latency
from voicefleet.loadtest.phone_line import PhoneCall, StreamClosed
from voicefleet.loadtest.sip_eval_token import EvalTokenRefused, sip_eval_token
from voicefleet.loadtest.sip_line import SIP_FRAMING, SipLine, SipRefused
from voicefleet.loadtest.sip_uri import sip_uri
from voicefleet.loadtest.whatsapp_line import WhatsAppLine, WhatsAppRefused

GREETING_WAIT = 30.0
HANG_UP_WAIT = 15.0  # the bot's own end of the call, after its last answer
QUIET_AFTER = 1.0  # an answer ends this long after the bot's last loud audio (the load test's rule)
TRANSCRIPT_WAIT = 30.0  # the call's end → its transcript written
SIP_ANSWER_WAIT = 180.0  # INVITE → 200 OK: the edge answers once the bot joined (a cold start, with a margin)


async def converse_by_phone(target: Target, scenario: Scenario, answer: dict[str, Any], http: httpx.AsyncClient,
                            result: CallResult) -> None:
    line = None
    if scenario.sip_uri:  # marked an eval's and pinned by the INVITE's token: the edge sends the start
        try:
            token = await sip_eval_token(http, target.base_url, target.headers(), target.release, evaluation=True)
        except EvalTokenRefused as refused:
            result.problems.append(f"the caller could not connect: {refused}"[:300])
            return
        line = SipLine(sip_uri(scenario.sip_uri), answer_seconds=SIP_ANSWER_WAIT, eval_token=token)
    call: PhoneCall | WhatsAppLine
    if scenario.transport == "whatsapp":  # marked and pinned by the dispatcher's eval entry, which starts it
        call = WhatsAppLine(target.base_url, target.headers(), number=scenario.whatsapp_number,
                            release=target.release, body=answer.get("body") or {})
    elif line is not None:
        call = PhoneCall(line.target.uri, SIP_FRAMING, open_line=line.open)
    else:
        call = PhoneCall(f"{answer['wsUrl']}/{answer['token']}", FRAMINGS[scenario.transport])
    try:
        await call.connect()
    except Exception as error:  # a socket refused or never upgraded, an INVITE or a call refused: its failure
        why = str(error) if isinstance(error, SipRefused | WhatsAppRefused) else f"{type(error).__name__}: {error}"
        result.problems.append(f"the caller could not connect: {why}"[:300])
        await call.close()
        return
    finally:  # named even when the connection then failed or was cancelled: the run's end stops it (call.py)
        _named(result, line, call)
    began: list[float] = []
    latencies: list[float | None] = []
    ended: bool | None = None
    ended_at: int | None = None  # the turn by whose end the bot had closed the stream
    try:
        begin = None if scenario.call.greeting is not None else target.speak_first_after
        await _answer(call, after=0.0, listen=GREETING_WAIT, begin_within=begin)
        for turn in scenario.turns:
            began.append(time.monotonic())
            try:
                if turn.dtmf is not None:
                    await call.press(turn.dtmf)
                    latencies.append(await _answer(call, after=time.monotonic(), listen=turn.listen_ms / 1000))
                else:
                    speech = speech_of(turn.say, turn.wav, scenario.source)
                    latency = await call.turn(speech, listen_seconds=turn.listen_ms / 1000)
                    latencies.append(None if latency is None or call.spoken_at is None
                                     else own_latency(call.lag, call.spoken_at, call.spoken_at + latency))
                result.caller_behind = max(result.caller_behind, call.behind())
            except StreamClosed:  # the bot hung up (or crashed) before the caller's turn was all sent
                latencies.append(None)
            if call.closed():
                ended_at = len(began)
                break
        if scenario.call.bot_ends is not None:
            ended = ended_at is not None or await _bot_hung_up(call)
    finally:
        await call.close()
    heard = await _words(target, http, result, scenario, call.first_audio_at(), began)
    _judge_turns(scenario, heard, latencies, began, result)
    if ended_at is not None:  # the first turn that failed once the bot had ended the call says why
        failed = next((n for n, t in enumerate(result.turns[ended_at - 1:], ended_at) if t.problems), None)
        if failed is not None and (end := await ended_reason(target, http, result.session_id, failed,
                                                             hung_up=True)):
            result.turns[failed - 1].problems.insert(0, end.reason)
            result.lost_at = failed if end.lost else None
    if ended is not None and ended != scenario.call.bot_ends and not (ended and result.turns[-1].problems):
        result.problems.append("the bot ended the call, which it should not" if ended
                               else NO_HANG_UP)


def _named(result: CallResult, line: SipLine | None, call: PhoneCall | WhatsAppLine) -> None:
    """The call's session, once the line knows it: the edge's 200 OK names it, or the eval entry's answer."""
    if line is not None:
        result.session_id = line.session_id
    elif isinstance(call, WhatsAppLine):
        result.session_id, result.release = call.session_id, call.release


async def _words(target: Target, http: httpx.AsyncClient, result: CallResult, scenario: Scenario,
                 first_audio_at: float | None, began: list[float]) -> Heard:
    if not scenario.reads_words() or result.session_id is None:
        return Heard(answers=[""] * len(began), caller=[""] * len(began))
    lines = await transcript_lines(http, target.base_url, result.session_id, target.headers(), TRANSCRIPT_WAIT)
    if isinstance(lines, str):
        result.problems.append(f"the bot's words could not be read: {lines}")
        return Heard(answers=[""] * len(began), caller=[""] * len(began))
    return laid_on_turns(lines, first_audio_at, began)


def _judge_turns(scenario: Scenario, heard: Heard, latencies: list[float | None], began: list[float],
                 result: CallResult) -> None:
    if scenario.call.greeting is not None and (problems := failures(scenario.call.greeting, Answer(heard.greeting,
                                                                                                  None))):
        result.problems.append(f"greeting: {problems[0]}")
    for index, turn in enumerate(scenario.turns):
        if index >= len(latencies):
            result.turns.append(not_taken(turn.said))
            continue
        latency = None if latencies[index] is None else latencies[index] * 1000  # type: ignore[operator]
        answer = Answer(heard.answers[index], latency, heard.caller[index])
        result.turns.append(TurnResult(turn.said, answer.text, latency, failures(turn.expect, answer),
                                       answer.caller_as_heard, wall_clock(began[index])))


async def _answer(call: PhoneCall | WhatsAppLine, *, after: float, listen: float, begin_within: float | None = None
                  ) -> float | None:
    """Waits until the bot answered what ended at `after` (monotonic) and fell quiet, or `listen` seconds
    (or `begin_within` seconds, when it has not begun by then); the answer's latency in seconds (less
    the caller's own lag meanwhile), or None when it said nothing."""
    began = time.monotonic()
    deadline = began + listen
    while time.monotonic() < deadline and not reply_heard(call.times, call.levels, after, time.monotonic(),
                                                          quiet_after=QUIET_AFTER):
        if call.closed():
            break
        if begin_within is not None and time.monotonic() - began > begin_within and first_reply(
                call.times, call.levels, after) is None:
            break  # silent so far: the caller speaks first
        await asyncio.sleep(0.05)
    reply = first_reply(call.times, call.levels, after)
    return None if reply is None else own_latency(call.lag, after, reply.start)


async def _bot_hung_up(call: PhoneCall | WhatsAppLine) -> bool:
    deadline = time.monotonic() + HANG_UP_WAIT
    while time.monotonic() < deadline:
        if call.closed():
            return True
        await asyncio.sleep(0.1)
    return False
