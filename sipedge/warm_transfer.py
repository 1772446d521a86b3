"""A caller handed to a person, warm (docs/sip.md#handing-a-call-to-a-person): the caller hears hold
tones, the edge calls the person through the trunk's termination (showing the number the caller
dialled), and once they answer the bot hears and speaks to them (the caller's port in PJSUA's
conference bridge joined to the person's leg) and is told, through the dispatcher, to brief them
(`brief`). Once the bot said its briefing (or BRIEF_WAIT_SECONDS passed) and the briefing's last frames,
still queued for the person then (the bot's transport sends ahead of real time: sipedge/playout.py), were
played to them, the caller and the person are bridged as a cold bridge does (sipedge/call_transfer.py: hung
up after `time_limit`) and the bot's stream released. The person's leg is priced from their answer to its
end, bridged or not.

The person declines, is busy, does not answer within their ring time, or hangs up during the briefing:
the hold tones stop, the caller is back with the bot, and the bot is told why (the `failed` step),
so it says so; the control API answers 409 naming it. After a briefing began, the bot is first
interrupted (`stop`), the caller on the tones until it is quiet. The caller hanging up during the hold ends it all:
the person's call is cancelled (409 `call_over`), and the session ends as the caller's hang-up.
Every step is bounded: the ring, the briefing's request, the SIP thread's work; all of it within WARM_SECONDS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from sipedge.call_reports import STOP_STEP_SECONDS, WARM_STEP_SECONDS
from sipedge.call_transfer import (
    PERSON_RING_SECONDS,
    Handed,
    InboundCall,
    Legs,
    NotHanded,
    PersonLeg,
    Tell,
    Transfer,
    dialled_by_trunk,
    join_legs,
    once,
    or_gone,
    start_billing,
)
from sipedge.config import Trunk
from sipedge.outbound_call import invite
from sipedge.outbound_sip import target_uri
from sipedge.sip_call import SipCall
from sipedge.sip_end import SipEnd
from sipedge.stack import SipStack
from voicefleet_settings.call_policy import destination_allowed

log = logging.getLogger("sipedge")

BRIEF_WAIT_SECONDS = WARM_STEP_SECONDS  # the dispatcher's answer to `brief`: the bot's BRIEF_SECONDS and the way there
WARM_SECONDS = 36.0  # the ring, the briefing and the bridge (the dispatcher waits a little longer)
# The hold "music": a short rising figure, then a pause, looped by PJSUA's tone generator.
HOLD_NOTES = ((523, 659, 260), (659, 784, 260), (784, 1047, 260), (659, 784, 260))
HOLD_PAUSE_MSEC = 900
# The dispatcher told of a step (sipedge/call_reports.py `warm`): the bot's answer, `spoken` or not.
Brief = Callable[[dict[str, Any]], Awaitable[bool]]
_told: set[asyncio.Future[Any]] = set()  # the callers handed back to their bots, kept from the collector
STOP_WAIT_SECONDS = STOP_STEP_SECONDS + 0.5  # the bot interrupted, the caller on hold meanwhile
PLAYED_OUT_MARGIN_SECONDS = 0.5  # beyond the briefing's queued seconds: PJSIP's media clock, late on a busy edge
BRIDGE_SECONDS = 1.0  # of WARM_SECONDS, kept for the bridge: the briefing's playing out stops short of it
FRAME_SECONDS = 0.02  # how often the queue is looked at: a frame of PJSIP's media clock


def warm_number(trunk: Trunk, to: str) -> str:
    """The number `trunk` dials for `to`: a number, or a SIP URI at the trunk's termination host; else
    `NotHanded` naming where a warm transfer works."""
    if trunk.termination_uri is None:
        raise NotHanded(409, "warm_no_route", f"trunk {trunk.name!r} has no termination_uri: a warm transfer calls the "
                        "person through the trunk, so give it one, or use a cold transfer (a REFER)")
    number = to if not to.startswith(("sip:", "sips:")) else dialled_by_trunk(trunk, to)
    if number is None:
        raise NotHanded(409, "warm_no_route", f"a warm transfer calls the person through trunk {trunk.name!r}: give "
                        "a number, or a SIP URI at the trunk's termination host (a cold transfer reaches other URIs)")
    if not destination_allowed(trunk.destinations, number):
        raise NotHanded(409, "target_not_routed", f"trunk {trunk.name!r} does not call {number[:40]} (its "
                        "`destinations` in the edge's file): the call stays with the bot")
    return number


async def warm_over(stack: SipStack, held: InboundCall, asked: Transfer, legs: Legs, brief: Brief,
                    tell: Tell | None = None) -> Handed:
    number = warm_number(held.trunk, asked.to)
    account = stack.outbound_accounts.get(held.trunk.name)
    if account is None:
        raise NotHanded(409, "warm_no_route", f"trunk {held.trunk.name!r} places no calls here")
    ring = min(held.trunk.ring_seconds, PERSON_RING_SECONDS)
    until = asyncio.get_running_loop().time() + WARM_SECONDS - BRIDGE_SECONDS
    hold = Hold(held.call)
    await on_sip_thread(stack, hold.start)
    log.info("sipedge: session %s: the caller on hold, %s rung for a warm transfer", held.flow.session_id, number)
    try:
        await _consulted(stack, held, asked, _Consult(number, ring, until, legs, account, brief, tell), hold)
    except NotHanded as refused:
        if refused.code == "call_over":  # nobody to say it to: only the tones let go
            stack.submit(hold.back)
        else:  # the caller is still there, with the bot again once it is quiet: it says so
            _in_background(_back_to_bot(stack, hold, brief, refused.message))
        raise
    except BaseException:
        stack.submit(hold.back)
        raise
    log.info("sipedge: session %s warm-transferred to %s for %d s at most", held.flow.session_id, number,
             asked.time_limit)
    end = SipEnd("edge", "bridged", 200, f"warm-transferred to {number}")
    return Handed("warm", target_uri(held.trunk, number), 200, once(lambda: held.flow.release(end)))


@dataclass(frozen=True)
class _Consult:
    number: str  # the person's, as the trunk dials it
    ring: float  # how long they may ring
    until: float  # the loop's time by which the briefing was played to them, to bridge within WARM_SECONDS
    legs: Legs
    account: pj.Account  # the trunk's, that places calls
    brief: Brief
    tell: Tell | None  # the person's leg, billed from their answer


async def _consulted(stack: SipStack, held: InboundCall, asked: Transfer, how: _Consult, hold: Hold) -> None:
    """The person called, briefed by the bot, then bridged with the caller; `NotHanded` why not. Their leg is
    billed from their answer to its end, whichever way it ends (the trunk bills it from the answer)."""
    leg = PersonLeg(asyncio.get_running_loop(), stack, held.call)
    try:
        person = await invite(stack, how.account, held.trunk, how.number, held.number, leg, how.legs, for_person=True)
    except pj.Error as exc:
        raise NotHanded(503, "transfer_failed", f"the call to the person could not be placed: {exc.reason}") from None
    try:
        status = await leg.answered(held.flow, how.ring)
        if status != 200:
            raise NotHanded(409, unanswered_code(status), f"the person did not answer (SIP {status}, {how.ring:g} s "
                            "at most): the caller is back with the bot")
        start_billing(held, leg, asked.time_limit, how.tell)
        await on_sip_thread(stack, lambda: hold.consult(person))
        log.info("sipedge: session %s: the person answered a warm transfer; the bot briefs them", held.flow.session_id)
        summary = {"summary": asked.summary} if asked.summary is not None else {}
        await or_gone(held.flow, _briefed(how.brief({"event": "brief", "to": how.number, **summary}), leg))
        await or_gone(held.flow, _played_out(held, leg, how.until))
        if leg.gone.is_set():
            raise NotHanded(409, "person_left", "the person hung up during the bot's briefing: the caller is back "
                            "with the bot")
        await on_sip_thread(stack, lambda: hold.bridge(person, stack, held, asked.time_limit))
    except BaseException:
        stack.submit(person.end)  # the person's call never outlives a transfer that did not happen
        raise


async def _briefed(said: Awaitable[bool], leg: PersonLeg) -> None:
    """Until the bot said its briefing (the dispatcher's answer), the person hung up, or the wait is over."""
    told = asyncio.ensure_future(said)
    gone = asyncio.create_task(leg.gone.wait())
    try:
        await asyncio.wait({told, gone}, timeout=BRIEF_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not told.done():
            told.cancel()


async def _played_out(held: InboundCall, leg: PersonLeg, until: float) -> None:
    """Until the briefing's frames still queued for the person were played to them (PJSIP's media clock takes
    them from its own thread), the person hung up, or the wait is over: what was queued and a margin, never past
    `until` (the loop's time)."""
    playout, loop = held.call.playout, asyncio.get_running_loop()
    queued = playout.seconds()
    deadline = min(loop.time() + queued + PLAYED_OUT_MARGIN_SECONDS, until)
    # Polled: the queue is drained on PJSIP's thread, whose every frame an event set from there would cost.
    while not playout.empty() and not leg.gone.is_set() and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(FRAME_SECONDS)
    if queued > 0:
        cut = "" if playout.empty() else " (not all: the person left, or the wait was over)"
        log.info("sipedge: session %s: the briefing's last %.2f s played to the person before the bridge%s",
                 held.flow.session_id, queued, cut)


async def _back_to_bot(stack: SipStack, hold: Hold, brief: Brief, why: str) -> None:
    """The caller back with the bot, which is told why. After a consult the bot was briefing the person: it is
    cut off from them and interrupted (`stop`) first, the caller on the tones meanwhile, so that the caller
    never hears the briefing (sipedge/playout.py's queue of it is emptied on the way)."""
    if hold.person is not None:
        try:
            await on_sip_thread(stack, hold.unconsult)
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                await brief({"event": "stop"})
        except (TimeoutError, pj.Error) as exc:  # the caller is back with the bot all the same, not left on hold
            log.warning("sipedge: the bot was not stopped after the warm transfer's briefing: %r", exc)
    await on_sip_thread(stack, hold.back)
    await brief({"event": "failed", "reason": why[:256]})


def _in_background(work: Awaitable[bool] | Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _told.add(task)
    task.add_done_callback(_told.discard)


def unanswered_code(status: int) -> str:
    """The person's final answer as the control API's code."""
    if status in (486, 600):
        return "person_busy"
    if status == 603:
        return "person_declined"
    return "person_unanswered"


async def on_sip_thread(stack: SipStack, work: Callable[[], None]) -> None:
    """`work` run on the SIP thread; what it raised, raised here."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            work()
            done.set_result(None)
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting side)
            done.set_exception(exc)

    stack.submit(run)
    await asyncio.wrap_future(done)


class Hold:
    """The caller's audio paths during a warm transfer, changed on the SIP thread: off the bot and onto the
    hold tones; the bot's port joined to the person's leg; then the two legs bridged, or the bot's again."""

    def __init__(self, caller: SipCall) -> None:
        self.caller = caller
        self.tone: pj.ToneGenerator | None = None
        self.person: SipCall | None = None  # once the bot was joined to them (a consult began), kept

    def start(self) -> None:
        caller = self.caller
        if caller.ended or caller.port is None:
            raise NotHanded(409, "call_over", "the caller hung up before the call was handed over")
        audio = caller.getAudioMedia(-1)
        _quietly(audio.stopTransmit, caller.port)
        _quietly(caller.port.stopTransmit, audio)
        tone = pj.ToneGenerator()
        tone.createToneGenerator()
        tone.play(_hold_tones(), True)
        tone.startTransmit(audio)
        self.tone = tone
        caller.on_hold = self._held  # a re-INVITE's new stream: the tones again, never the bot

    def _held(self, audio: pj.AudioMedia) -> None:
        if self.tone is not None:
            self.tone.startTransmit(audio)

    def consult(self, person: SipCall) -> None:
        """The bot hears and speaks to the person (the caller's port, whose audio is the bot's stream)."""
        caller = self.caller
        if caller.ended or person.ended or caller.port is None:
            raise NotHanded(409, "call_over", "a leg hung up as the bot was joined to the person")
        caller.playout.clear()  # what the bot said to the caller before the hold is not the person's
        self._to_bot(person.getAudioMedia(-1))
        self.person = person
        person.on_hold = self._to_bot  # the person's re-INVITE: their new stream is the bot's too

    def _to_bot(self, theirs: pj.AudioMedia) -> None:
        port = self.caller.port
        if port is not None and not self.caller.ended:
            port.startTransmit(theirs)
            theirs.startTransmit(port)

    def unconsult(self) -> None:
        """The bot off the person's leg, what it was saying to them dropped; the caller still on the tones."""
        self._unconsult()
        self.caller.playout.clear()

    def bridge(self, person: SipCall, stack: SipStack, held: InboundCall, time_limit: int) -> None:
        """Caller and person to each other, the bot out of both, as a cold bridge joins them."""
        if self.caller.ended or person.ended:
            raise NotHanded(409, "call_over", "a leg hung up as the two were being bridged")
        self._unconsult()
        self._stop_tone()
        self._bot_again()
        join_legs(stack, held, person, time_limit)

    def back(self) -> None:
        """The caller with the bot again (or, hung up, only the tones let go); none of what the bot said
        during the hold, to the person or to nobody, is played to the caller."""
        self._unconsult()
        self.caller.playout.clear()
        self._stop_tone()
        if not self.caller.ended and self.caller.bridged_to is None:
            self._bot_again()

    def _unconsult(self) -> None:
        person, port = self.person, self.caller.port
        if person is not None:
            person.on_hold = None
        if person is None or person.ended or port is None:
            return
        with contextlib.suppress(pj.Error):
            theirs = person.getAudioMedia(-1)
            _quietly(port.stopTransmit, theirs)
            _quietly(theirs.stopTransmit, port)

    def _bot_again(self) -> None:
        caller = self.caller
        caller.on_hold = None
        if caller.ended or caller.port is None:
            return
        audio = caller.getAudioMedia(-1)
        audio.startTransmit(caller.port)
        caller.port.startTransmit(audio)

    def _stop_tone(self) -> None:
        tone, self.tone = self.tone, None
        if tone is not None:
            with contextlib.suppress(pj.Error):
                tone.stop()
            # Dropped here, on the SIP thread: PJSUA2's destructor removes its port from the bridge.


def _hold_tones() -> pj.ToneDescVector:
    notes = pj.ToneDescVector()
    for index, (low, high, msec) in enumerate(HOLD_NOTES):
        note = pj.ToneDesc()
        note.freq1, note.freq2, note.on_msec = low, high, msec
        note.off_msec = HOLD_PAUSE_MSEC if index == len(HOLD_NOTES) - 1 else 40
        note.volume = 0  # PJMEDIA's default level
        notes.append(note)
    return notes


def _quietly(stop: Callable[[pj.AudioMedia], None], media: pj.AudioMedia) -> None:
    """A transmission stopped, or none there was to stop."""
    with contextlib.suppress(pj.Error):
        stop(media)
