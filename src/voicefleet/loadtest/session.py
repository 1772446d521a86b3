"""One caller's session, as Pipecat's clients and a carrier place it, measured on the way.

WebRTC: `POST /start {"body": {...}}` (the official request shape), then at once the offer to its
`offer_url` (the dispatcher holds an early offer until the bot is ready, as a Pipecat client
relies on) and, beside it, the long-poll `GET /sessions/{id}?wait=started` that says when the bot
runs. Twilio: `POST /start {"transport": "twilio"}`, the stream opened on `{wsUrl}/{token}` (the
bot starts when it connects), the same long-poll. Then the bot's first audio, then `turns` times:
the WAV spoken, the reply's latency from the end of the speech. Then hang up, read its timeline for the
dispatcher's own figures and the bot's account of its end, and `DELETE` a session whose bot has not
said it ended (a run interrupted or past a deadline stops its sessions at once).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from voicefleet.loadtest.audio import Pcm
from voicefleet.loadtest.rail import elsewhere, offer_url
from voicefleet.loadtest.record import REFUSED, SessionRecord
from voicefleet.loadtest.session_calls import json_object, refusal, session_url, stop_session, timeline_once_ended
from voicefleet.loadtest.sip_uri import SipUri
from voicefleet.loadtest.timeline import durations, end_reason

START_ATTEMPTS = 3  # a start whose connection dropped before its answer, sent again
START_BACKOFF = 0.5
LONG_POLL_SECONDS = 25
END_WAIT_SECONDS = 15.0  # a hung-up session's bot reports its end within seconds
END_POLL_SECONDS = 0.5  # the dispatcher's default long-poll
POLL_MISSING_SECONDS = 0.2  # a phone session appears once its stream connected: asked again this often


@dataclass(frozen=True)
class Call:
    """How every session of a run is placed and how long each step may take."""

    base_url: str
    api_key: str | None
    transport: str  # webrtc | twilio | sip
    speech: Pcm
    turns: int
    release: str | None
    run_id: str
    allow_remote: bool = False  # else a session sent to another host than base_url's is refused (rail.py)
    ready_timeout: float = 180.0  # a cold start on a cloud provider, with a margin
    audio_timeout: float = 60.0  # connected → the bot's first audio
    # connected → the caller speaks first, when the bot has said nothing (it waits to be spoken to, as a
    # speech-to-speech bot may); 0: never, a bot that does not greet fails `nofirst_audio`.
    speak_first_after: float = 10.0
    listen_seconds: float = 15.0  # the end of the caller's speech → a whole reply heard
    sip_uri: SipUri | None = None  # --transport sip: the edge and the number called

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class Caller(Protocol):
    """What a session needs of its caller, whatever carries the audio."""

    async def connect(self) -> None: ...
    @property
    def connected_at(self) -> float | None: ...  # monotonic: the media connection came up
    def first_frame_at(self) -> float | None: ...  # monotonic: the first bot audio received, silent or not
    def first_audio_at(self) -> float | None: ...  # monotonic: the first loud bot audio heard
    async def turn(self, speech: Pcm, *, listen_seconds: float) -> float | None: ...  # the reply's latency
    async def close(self) -> None: ...


async def run_session(call: Call, http: httpx.AsyncClient, record: SessionRecord) -> None:
    """Places one session and fills `record`; never raises but for cancellation (cleaned up too)."""
    if call.transport == "sip":
        from voicefleet.loadtest.sip_session import run_sip_session  # the call is the start: no POST /start

        await run_sip_session(call, http, record)
        return
    began = time.monotonic()
    answer = await _start(call, http, record, began)
    if answer is None:
        return
    if not call.allow_remote and (why := elsewhere(call.base_url, answer)) is not None:
        record.fail("remote_session_url", why)
        await stop(call, http, record)
        return
    caller: Caller | None = None
    try:
        caller = _caller(call, answer)
        ready = asyncio.create_task(_wait_ready(call, http, record, began))
        try:
            await _connect(caller, record)
            connected = record.outcome == "ok"
            if connected and caller.connected_at is not None:
                record.connected = caller.connected_at - began
            if record.outcome == "ok":
                await first_audio(call, caller, record, began)
            if record.outcome == "ok":
                await take_turns(call, caller, record)
            if connected:  # else there is nothing to wait for: a call's session exists once its stream does
                await ready
        finally:
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
    except BaseException:  # cancelled, past its deadline, or the caller's own fault: stopped at once
        if caller is not None:
            await caller.close()
        await stop(call, http, record)
        raise
    await caller.close()  # the hang-up, as a caller ends a call: the bot ends the session itself
    await read_timeline(call, http, record)
    if record.bot_end is None:  # it did not say it ended: stopped, so nothing is left running
        await stop(call, http, record)


async def _start(call: Call, http: httpx.AsyncClient, record: SessionRecord, began: float) -> dict[str, Any] | None:
    body: dict[str, Any] = {"body": {"loadtest": call.run_id}}
    if call.transport != "webrtc":
        body["transport"] = call.transport
    if call.release:
        body["release"] = call.release
    headers = {**call.headers(), "Idempotency-Key": f"loadtest-{call.run_id}-{record.index}"}
    for attempt in range(START_ATTEMPTS):  # the key makes a repeat the same session: safe to send again
        try:
            response = await http.post(f"{call.base_url}/start", json=body, headers=headers)
            break
        except httpx.TransportError as error:
            if attempt + 1 == START_ATTEMPTS or isinstance(error, httpx.TimeoutException):
                record.fail("unreachable" if isinstance(error, httpx.ConnectError) else "no_answer",
                            f"POST /start: {type(error).__name__} {error}".strip())
                return None
            await asyncio.sleep(START_BACKOFF * 2**attempt)
    record.start_answer = time.monotonic() - began
    record.status = response.status_code
    answer = json_object(response)
    if not response.is_success:
        record.outcome = REFUSED
        record.code, record.message = refusal(response)
        return None
    record.session_id = answer.get("session_id") or answer.get("sessionId")
    record.release = answer.get("release")
    if record.session_id is None:
        record.fail("not_a_dispatcher", f"POST /start answered {response.status_code} without a session id")
        return None
    if answer.get("status") not in (None, "starting"):  # a warm bot: it runs already
        record.ready = record.start_answer
    return answer


def _caller(call: Call, answer: dict[str, Any]) -> Caller:
    if call.transport == "webrtc":
        from voicefleet.loadtest.webrtc_caller import WebRTCCaller  # aiortc: imported by the runs that need it

        return WebRTCCaller(offer_url(call.base_url, answer), call.headers(), answer.get("iceConfig"))
    from voicefleet.loadtest.carrier_frames import FRAMINGS
    from voicefleet.loadtest.phone_line import PhoneCall

    return PhoneCall(f"{answer['wsUrl']}/{answer['token']}", FRAMINGS[call.transport])


async def _connect(caller: Caller, record: SessionRecord) -> None:
    try:
        await caller.connect()
    except Exception as error:  # an offer refused, ICE that never came up, a socket refused: each a failure
        status = getattr(error, "status", None) or getattr(getattr(error, "response", None), "status_code", None)
        record.fail(f"connect_{status}" if status else "connect_failed", f"{type(error).__name__}: {error}"[:300])


async def first_audio(call: Call, caller: Caller, record: SessionRecord, began: float) -> None:
    """The bot's first audio; or, once `speak_first_after` passed in silence, the caller speaks first
    (a session with turns to take)."""
    speaks_first = call.speak_first_after > 0 and call.turns > 0
    wait = min(call.audio_timeout, call.speak_first_after) if speaks_first else call.audio_timeout
    deadline = time.monotonic() + wait
    while (heard := caller.first_audio_at()) is None:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    if heard is None and speaks_first:
        record.caller_spoke_first = True
    elif heard is None:
        record.fail("nofirst_audio", f"connected, and no bot audio within {call.audio_timeout:g} s")
    else:
        record.first_audio = heard - began
        if (frame := caller.first_frame_at()) is not None:
            record.first_frame = frame - began


async def take_turns(call: Call, caller: Caller, record: SessionRecord) -> None:
    for number in range(call.turns):
        try:
            latency = await caller.turn(call.speech, listen_seconds=call.listen_seconds)
        except ConnectionError as error:  # the media connection went down under the caller
            record.fail("connection_lost", f"turn {number + 1}: {error}")
            return
        except TimeoutError as error:  # the mic's audio was not all taken, the connection still up
            record.fail("speech_not_sent", f"turn {number + 1}: the connection stopped taking the caller's "
                                           f"audio before the speech was all sent ({error or 'no detail'})")
            return
        record.turns.append(latency)
        if latency is None:
            record.fail("no_reply", f"turn {number + 1}: no bot audio within {call.listen_seconds:g} s of the "
                                    "end of the caller's speech")
            return


async def _wait_ready(call: Call, http: httpx.AsyncClient, record: SessionRecord, began: float) -> None:
    """The long-poll until the session leaves `starting`; a session that failed is the record's failure."""
    if record.ready is not None or record.session_id is None:
        return
    route = session_url(call.base_url, record.session_id)
    deadline = began + call.ready_timeout
    while time.monotonic() < deadline:
        try:
            response = await http.get(route, params={"wait": "started", "timeout": LONG_POLL_SECONDS},
                                      headers=call.headers(), timeout=LONG_POLL_SECONDS + 10)
        except httpx.TransportError:
            await asyncio.sleep(POLL_MISSING_SECONDS)
            continue
        status = json_object(response).get("status")
        if response.status_code == 404:  # a call's session exists once its stream connected
            await asyncio.sleep(POLL_MISSING_SECONDS)
        elif not response.is_success:
            record.fail(f"status_http_{response.status_code}", f"GET {route}: HTTP {response.status_code}")
            return
        elif status == "failed":
            record.fail("session_failed", str(json_object(response).get("detail") or "the session failed"))
            return
        elif status != "starting":
            record.ready = time.monotonic() - began
            return
    record.fail("ready_timeout", f"the session was still starting after {call.ready_timeout:g} s")


async def stop(call: Call, http: httpx.AsyncClient, record: SessionRecord) -> None:
    await stop_session(http, call.base_url, record.session_id, call.headers())


async def read_timeline(call: Call, http: httpx.AsyncClient, record: SessionRecord) -> None:
    """The timeline once the bot has reported its end (at most END_WAIT_SECONDS after the hang-up)."""
    if record.session_id is None:
        return
    events = await timeline_once_ended(http, call.base_url, record.session_id, call.headers(), END_WAIT_SECONDS,
                                       END_POLL_SECONDS)
    if events is not None:
        record.timeline, record.bot_end = durations(events), end_reason(events)
