"""One call from INVITE to hang-up, on the event loop. The INVITE was admitted and is ringing (180);
the flow asks the dispatcher for the call's session, opens its stream and sends a carrier's
handshake, then answers `200 OK` once the bot has joined (its media socket is up) or has spoken,
whichever comes first. From then the caller's audio goes to the stream and the bot's to the
caller's RTP. Either side's end ends the other: the caller's BYE or CANCEL closes the stream (the
dispatcher ends the session and stops its bot); the stream's close sends BYE. A refusal before the
answer is 486 or 503 with Retry-After (refusals.py), and nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from sipedge import frame_trace, stream_frames
from sipedge.dispatcher_link import CallToken, DispatcherLink, SessionGone
from sipedge.handover import handover
from sipedge.playout import Playout
from sipedge.refusals import SipRefusal, unavailable
from sipedge.sip_end import SipEnd, edge_hung_up

log = logging.getLogger("sipedge")
UNANSWERED_ENDS = ("cancel", "failed")  # sipedge/sip_end.py `disconnected`: the trunk never ACKed a 200 OK

KEEPALIVE_SECONDS = 1.0  # before the answer, silence now and then: the dispatcher ends a silent stream
SILENCE = bytes(320)  # 20 ms
Submit = Callable[[Callable[[], None]], None]  # runs work on the SIP thread


class CallFlow:
    """`heard`, `pressed` and `hung_up` are called from PJSIP's threads; they hand over to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, playout: Playout) -> None:
        self._loop = loop
        self._handover = handover(loop)  # the caller's audio and keys, with every other call's, to the loop
        self.playout = playout
        # The caller's audio (PCM) and keys (a digit), in the order they came: 5 s of frames at most.
        self.caller_audio: asyncio.Queue[bytes | str] = asyncio.Queue(maxsize=250)
        self._queued_at = loop.time()  # the last item put in caller_audio, for the keepalive
        self.caller_gone = asyncio.Event()
        self.sip_end: SipEnd | None = None  # how PJSUA ended the call, once it did (set before caller_gone)
        self.answered = False
        # Monotonic seconds of the 200 OK and of the call's end (PJSUA's, or the hand-over to a person):
        # the answered seconds its end tells (`timed`).
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.session_id: str | None = None  # the call's session, once the dispatcher made it: named in the 200 OK
        # Handed to a person and bridged (sipedge/call_transfer.py): the bot's stream closes, the caller stays.
        self.released = asyncio.Event()
        self.handed: SipEnd | None = None

    def release(self, end: SipEnd) -> None:
        """The caller is bridged to a person: the bot's stream ends, the caller's leg is the bridge's now."""
        self.handed = end
        self.ended_at = self.ended_at or time.monotonic()
        self.released.set()

    def heard(self, pcm: bytes) -> None:
        self._handover.put(self._queue_heard, pcm)

    def sip_ended(self, end: SipEnd) -> None:
        """How PJSUA ended the call: told just before `hung_up`, and so handed over before it. Its moment is
        read here, on the SIP thread, not once a busy loop gets to it."""
        self._handover.put(self._sip_ended, (end, time.monotonic()))

    def _sip_ended(self, told: tuple[SipEnd, float]) -> None:
        if self.sip_end is None:
            self.sip_end, at = told
            self.ended_at = self.ended_at or at

    def timed(self, end: SipEnd | None) -> SipEnd | None:
        """`end` with the call's answered seconds, once it was answered: to its end, or to now (the edge's own
        BYE, told as it is sent). A CANCEL or PJSIP's own end that raced the 200 OK (never acknowledged): 0, a
        call the trunk did not take as answered."""
        if end is None or self.answered_at is None:
            return end
        if end.how in UNANSWERED_ENDS:
            return replace(end, answered_seconds=0.0)
        ended = self.ended_at if self.ended_at is not None else time.monotonic()
        return replace(end, answered_seconds=round(max(0.0, ended - self.answered_at), 3))

    def hung_up(self, status: int) -> None:
        # Through the same hand-over as the caller's audio and keys: a key pressed just before the BYE is
        # queued before the call is gone (a hang-up scheduled apart could overtake a batch being scheduled).
        self._handover.put(self._hung_up, status)

    def _hung_up(self, status: int) -> None:
        self.caller_gone.set()

    def pressed(self, digit: str) -> None:
        self._handover.put(self._queue_heard, digit)  # in order with the audio around it

    def _queue_heard(self, pcm: bytes | str) -> None:
        if self.answered and not self.caller_gone.is_set():
            self._queue(pcm)

    def _queue(self, item: bytes | str) -> None:
        self._queued_at = self._loop.time()
        with contextlib.suppress(asyncio.QueueFull):  # a stalled stream: drop the caller's newest
            self.caller_audio.put_nowait(item)

    def keep_alive(self) -> Callable[[], None]:
        """Silence for the stream whenever nothing was queued for it for KEEPALIVE_SECONDS (before the answer,
        the caller's audio is not); returns what stops it. One timer a second, not one per frame."""
        timer: list[asyncio.TimerHandle] = []

        def check() -> None:
            idle = self._loop.time() - self._queued_at
            if idle >= KEEPALIVE_SECONDS:
                self._queue(SILENCE)
                idle = 0.0
            timer[:] = [self._loop.call_later(KEEPALIVE_SECONDS - idle, check)]

        self._queued_at = self._loop.time()
        timer.append(self._loop.call_later(KEEPALIVE_SECONDS, check))
        return lambda: timer[0].cancel()


async def run_call(flow: CallFlow, link: DispatcherLink, api_key: str | None, body: dict[str, Any],
                   respond: Callable[[int, int | None], None], end: Callable[[], None],
                   answer_seconds: float, release: str | None = None, line: dict[str, Any] | None = None,
                   eval_token: str | None = None) -> None:
    """`respond(status, retry_after)` answers the INVITE, `end()` hangs up; both run on the SIP thread.
    `release`: the one the number's calls run (its start pins it); None: the dispatcher's choice.
    `line`: the trunk's inbound price, which its start names for the session's cost; None: not priced.
    `eval_token`: the INVITE's `X-Voicefleet-Eval`, forwarded in the start (call_data.py)."""
    # Not given up at a CANCEL: the dispatcher may have made the session already, and only its
    # answer says which one to stop. The wait is bounded (REQUEST_SECONDS a try).
    token = await link.call_token(api_key, body, release, line, eval_token)
    if isinstance(token, SipRefusal):
        if not flow.caller_gone.is_set():
            _refuse(respond, token, body)
        return
    log.info("sipedge: call %s (session %s) started", body.get("call_id"), token.session_id)
    flow.session_id = token.session_id
    if flow.caller_gone.is_set():
        await _tell(link, api_key, token.session_id, flow.sip_end)  # before the stop ends the session
        stopped = await link.stop(api_key, token.session_id)
        log.info("sipedge: call %s (session %s) ended by the caller before its stream opened%s",
                 body.get("call_id"), token.session_id, "" if stopped else "; the stop was not taken")
        return
    stream = await _until_caller_gone(flow, link.open_stream(token))
    if stream is None:  # a stream never opened holds its session until its token expires: stop it now
        await _tell(link, api_key, token.session_id, flow.sip_end)
        await link.stop(api_key, token.session_id)
        log.info("sipedge: call %s (session %s) ended by the caller before its stream opened",
                 body.get("call_id"), token.session_id)
        return
    if isinstance(stream, SipRefusal):
        _refuse(respond, stream, body)
        await _tell(link, api_key, token.session_id, _refused(stream))
        return
    refused: list[SipEnd] = []
    try:
        await _call(flow, link, api_key, token, stream, body, respond, answer_seconds, refused)
    finally:
        # The caller's end (or the edge's refusal) is told before the stream closes, so the session's
        # end (its webhook, its report) finds it: the bot ends only once the dispatcher took it (or,
        # the dispatcher not answering, its tries ran out: the stream to it is then likely gone too).
        told = refused[0] if refused else flow.timed(flow.handed or flow.sip_end)
        await _tell(link, api_key, token.session_id, told)
        await stream.close()
        if not flow.caller_gone.is_set() and flow.handed is None:
            end()
            await _tell(link, api_key, token.session_id, flow.timed(edge_hung_up(flow.answered)))
        elif told is None:  # the caller's BYE came while the stream closed: its end is the call's
            await _tell(link, api_key, token.session_id, flow.timed(flow.sip_end))
        log.info("sipedge: call %s (session %s) ended by the %s", body.get("call_id"), token.session_id,
                 _ended_by(flow))


async def _call(flow: CallFlow, link: DispatcherLink, api_key: str | None, token: CallToken,
                stream: ClientConnection, body: dict[str, Any], respond: Callable[[int, int | None], None],
                answer_seconds: float, refused: list[SipEnd]) -> None:
    """`refused` gets the edge's refusal, if it refused the call before its answer."""
    stream_id = uuid.uuid4().hex
    for frame in stream_frames.handshake(stream_id, str(body.get("call_id", "")), str(body.get("from", "")),
                                         str(body.get("to", "")), link.edge_url):
        await stream.send(frame)
    spoke = asyncio.Event()
    tasks = [asyncio.create_task(_bot_to_caller(stream, flow.playout, spoke)),
             asyncio.create_task(_caller_to_bot(stream, flow, stream_id))]
    try:
        ready = await _until_ready(flow, link, api_key, token.session_id, spoke, tasks[0], answer_seconds)
        if flow.caller_gone.is_set():
            return
        if ready is not None:
            _refuse(respond, unavailable(ready), body)
            refused.append(_refused(unavailable(ready)))
            flow.caller_gone.set()  # the INVITE is answered: nothing more to say to the caller
            return
        flow.answered, flow.answered_at = True, time.monotonic()
        respond(200, None)
        log.info("sipedge: call %s answered (session %s)", body.get("call_id"), token.session_id)
        ends = [asyncio.create_task(flow.caller_gone.wait()), asyncio.create_task(flow.released.wait())]
        await asyncio.wait([tasks[0], *ends], return_when=asyncio.FIRST_COMPLETED)
        for end in ends:
            end.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until_ready(flow: CallFlow, link: DispatcherLink, api_key: str | None, session_id: str,
                       spoke: asyncio.Event, bot_side: asyncio.Task[None], answer_seconds: float) -> str | None:
    """None once the bot is ready (or the caller hung up); else why the call cannot be answered."""
    joined = asyncio.create_task(link.until_joined(api_key, session_id))
    waits = {joined, asyncio.create_task(spoke.wait()), asyncio.create_task(flow.caller_gone.wait()), bot_side}
    try:
        done, _ = await asyncio.wait(waits, timeout=answer_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits - {bot_side}:
            task.cancel()
    if not done:
        return f"the bot was not ready within {answer_seconds:g} s"
    if bot_side in done and not spoke.is_set():
        return "the dispatcher closed the call's stream before its bot was ready"
    if joined in done and (error := joined.exception()) is not None:
        return f"the session {error} before its bot joined" if isinstance(error, SessionGone) else repr(error)
    return None


async def _bot_to_caller(stream: ClientConnection, playout: Playout, spoke: asyncio.Event) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in stream:
            frame = stream_frames.read_bot_frame(message)
            if frame is None:
                continue
            if frame.clear:
                playout.clear()
            elif frame.pcm:
                playout.add(frame.pcm)
                spoke.set()


async def _caller_to_bot(stream: ClientConnection, flow: CallFlow, stream_id: str) -> None:
    media = stream_frames.media_frames(stream_id)
    stop_keepalive = flow.keep_alive()
    try:
        with contextlib.suppress(ConnectionClosed):
            while True:
                heard = await flow.caller_audio.get()
                if isinstance(heard, str):
                    await stream.send(stream_frames.dtmf(stream_id, heard))
                else:
                    await stream.send(media(heard))
                    frame_trace.sent(heard)
    finally:
        stop_keepalive()


async def _until_caller_gone(flow: CallFlow, work: Any) -> Any:
    """`work`'s result, or None when the caller hung up (CANCEL) first: what it started is dropped."""
    task = asyncio.ensure_future(work)
    gone = asyncio.create_task(flow.caller_gone.wait())
    await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        result = await task
        if isinstance(result, ClientConnection):
            await result.close()
    return None


def _ended_by(flow: CallFlow) -> str:
    if not flow.caller_gone.is_set():
        return "transfer" if flow.handed else "bot's side"
    end = flow.sip_end
    # PJSIP's own end, or the edge's for want of an ACK (sipedge/ack_wait.py): no caller hung up.
    return f"edge ({end.reason or end.status})" if end is not None and end.by == "edge" else "caller"


def _refused(refusal: SipRefusal) -> SipEnd:
    return SipEnd("edge", "refused", refusal.status, refusal.why)


async def _tell(link: DispatcherLink, api_key: str | None, session_id: str, end: SipEnd | None) -> None:
    """The call's SIP end told to the dispatcher; nothing when there is nothing to tell, or the edge
    is stopping (its calls were hung up by PJSIP: no end of theirs to tell)."""
    if end is not None and not edge_stopping():
        await link.tell_end(api_key, session_id, end)


def edge_stopping() -> bool:
    """Whether this call's task is being cancelled: the edge stops, and PJSIP hung its calls up (no end of
    theirs to tell)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _refuse(respond: Callable[[int, int | None], None], refusal: SipRefusal, body: dict[str, Any]) -> None:
    log.warning("sipedge: call %s refused %d (%s)", body.get("call_id"), refusal.status, refusal.why)
    respond(refusal.status, refusal.retry_after)
