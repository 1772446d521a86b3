"""A caller handed to a person, cold (docs/sip.md#handing-a-call-to-a-person): the edge sends the caller's
side a REFER (RFC 3515) whose Refer-To is the person, and follows the NOTIFYs' sipfrag.

- The REFER accepted (202, or a NOTIFY): the trunk calls the person, and its final NOTIFY comes when they
  answer (or do not). The edge waits for it up to the person's ring time plus REFER_MARGIN_SECONDS: a 2xx,
  it hangs its leg up and the bot's stream ends (`referred`); a failure, the call stays with its bot
  (`refer_failed`); none in time, nobody knows where the call goes (`refer_outcome_unknown`: the edge still
  hangs its leg up if a 2xx NOTIFY comes later). An accepted REFER is never followed by a call of the
  edge's own: the person would be called twice.
- The REFER refused (its own final answer 4xx-6xx: 405, 501, 603): where the person is a number and the
  trunk places calls, the edge calls them through the trunk's termination and bridges the two legs in
  PJSUA's conference bridge, releasing the bot. The person's leg holds one of the edge's call slots, and
  the edge hangs both legs up after the transfer's `time_limit` (PHONE_TRANSFER_TIME_LIMIT_SECONDS), or
  when either hangs up. The person's answer and hang-up are told to the dispatcher (`tell`), which prices
  that leg's minutes on the session's telephony line at the trunk's outbound price.

Anything else is `NotHanded`, the call still with its bot, nothing changed. All of it answers within
HAND_OVER_SECONDS. Runs on the event loop; PJSUA2's calls go to the SIP thread (`SipStack.submit`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pjsua2 as pj

from sipedge.call_flow import CallFlow
from sipedge.config import Trunk
from sipedge.outbound_call import invite
from sipedge.outbound_sip import target_uri
from sipedge.sip_call import SipCall
from sipedge.sip_end import SipEnd
from sipedge.stack import SipStack
from voicefleet_settings.call_policy import destination_allowed

log = logging.getLogger("sipedge")
T = TypeVar("T")

PERSON_RING_SECONDS = 12.0  # how long the person may ring (the trunk's ring_seconds, if shorter)
# An accepted REFER's final NOTIFY: the trunk's call to the person rings, then is set up and reported back.
REFER_MARGIN_SECONDS = 8.0
# The whole hand-over, the dispatcher's request under it (dispatcher/phone/sip_transfers.py): the REFER's
# wait, or a refused REFER (its answer comes at once) and the bridged call's ring. PJSIP gives up on an
# unanswered REFER only after 32 s (Timer F), so within this any final answer to it is the trunk's own.
HAND_OVER_SECONDS = 22.0
MIN_RING_SECONDS = 4.0  # a person's phone rings a few seconds before anyone can answer
DEFAULT_TIME_LIMIT_SECONDS = 3600  # a bridged transfer's longest when the dispatcher names none
# The edge's own call to the person, counted against its capacity: `place` sends the INVITE (on the SIP thread).
Legs = Callable[[Callable[[], SipCall]], SipCall]
# Tells the dispatcher of the bridged person's leg (sipedge/call_reports.py): its minutes are the session's.
Tell = Callable[[dict[str, Any]], Awaitable[bool]]
_billing: set[asyncio.Task[None]] = set()  # the bridged legs' reports under way, kept from the collector


@dataclass(frozen=True, eq=False)  # one per call, told apart by identity
class InboundCall:
    """An inbound call the edge holds, as a transfer needs it."""
    call: SipCall
    flow: CallFlow
    trunk: Trunk
    number: str  # the number the caller dialled: the bridged call's caller id


@dataclass(frozen=True)
class Handed:
    how: str  # "referred" or "bridged"
    to: str  # the SIP URI the person was reached at
    sip_status: int  # the sipfrag's 2xx, or the person's answer
    # Lets the bot's stream go (the caller's leg hung up, or left to the bridge): run once the dispatcher has
    # its answer, so the session's end finds the transfer noted; it runs once, however often it is called.
    finish: Callable[[], None] = field(compare=False, default=lambda: None)


class NotHanded(Exception):
    """The call stays with its bot: `status` and `code` for the control API's answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Transfer:
    """What the dispatcher asked: the person, and how long a bridged transfer may last."""
    to: str
    time_limit: int = DEFAULT_TIME_LIMIT_SECONDS
    mode: str = "cold"  # or "warm" (sipedge/warm_transfer.py)
    summary: str | None = None  # warm: the bot's briefing, else its own


def person_uri(trunk: Trunk, to: str) -> str | None:
    """A sip: URI as given; a number at the trunk's termination host; None for a number with no termination."""
    if to.startswith(("sip:", "sips:")):
        return to
    return target_uri(trunk, to) if trunk.termination_uri is not None else None


async def hand_over(stack: SipStack, held: InboundCall, asked: Transfer, legs: Legs, tell: Tell | None = None
                    ) -> Handed:
    to = asked.to
    uri = person_uri(held.trunk, to)
    if uri is None:
        raise NotHanded(409, "transfer_no_route", f"trunk {held.trunk.name!r} has no termination_uri, so the edge has "
                        "no host to name a number at (a REFER's Refer-To) nor to call it through: give the trunk a "
                        "termination_uri, or transfer to a sip: URI")
    number = not to.startswith(("sip:", "sips:"))
    dialled = to if number else dialled_by_trunk(held.trunk, to)
    if dialled is not None and not destination_allowed(held.trunk.destinations, dialled):  # it pays for a REFER's too
        raise NotHanded(409, "target_not_routed", f"trunk {held.trunk.name!r} does not call {dialled[:40]} (its "
                        "`destinations` in the edge's file): the call stays with the bot")
    deadline = asyncio.get_running_loop().time() + HAND_OVER_SECONDS
    ring = min(held.trunk.ring_seconds, PERSON_RING_SECONDS)
    taken = await _refer(stack, held, uri, ring + REFER_MARGIN_SECONDS)
    if isinstance(taken, int):
        end = SipEnd("edge", "referred", taken, f"handed to {uri[:200]} by REFER")
        return Handed("referred", uri, taken, once(lambda: stack.submit(lambda: held.call.end(end))))
    refused = taken
    log.warning("sipedge: session %s: REFER to %s refused (%s)", held.flow.session_id, uri, refused)
    if not number or held.trunk.termination_uri is None:
        raise NotHanded(409, "refer_refused", f"the caller's side refused the REFER ({refused}), and only a "
                        "number can be bridged instead (through the trunk's termination): the call stays with the bot")
    ring = min(ring, deadline - asyncio.get_running_loop().time())
    if ring < MIN_RING_SECONDS:  # the refusal came late: no time left to ring the person within the answer's
        raise NotHanded(409, "refer_refused", f"the caller's side refused the REFER ({refused}) too late to call "
                        "the person instead: the call stays with the bot")
    return await _bridge(stack, held, to, uri, refused, _Bridge(ring, asked.time_limit, legs, tell))


def dialled_by_trunk(trunk: Trunk, uri: str) -> str | None:
    """The number a SIP URI at the trunk's termination host has the trunk dial (its user part), None for a
    URI elsewhere: `sip:+88216…@<termination host>` is the trunk's call as much as the number itself is."""
    if trunk.termination_uri is None:
        return None
    user, _, host = uri.partition(":")[2].partition("@")
    return user if _host_of(host) == _host_of(trunk.termination_uri.partition(":")[2].rpartition("@")[2]) else None


def _host_of(hostport: str) -> str:
    return re.split(r"[:;]", hostport, maxsplit=1)[0].lower()


async def _refer(stack: SipStack, held: InboundCall, uri: str, wait: float) -> int | str:
    """The 2xx the final NOTIFY said (the trunk connected the caller to the person); else, the REFER refused
    by its own answer, why. `NotHanded` when the trunk took the REFER but reached nobody, or did not say."""
    loop = asyncio.get_running_loop()
    # ("answer", the REFER's final response) or ("notify", a sipfrag's status, whether it is the last)
    progress: asyncio.Queue[tuple[str, int, bool]] = asyncio.Queue()
    sent: concurrent.futures.Future[None] = concurrent.futures.Future()
    call = held.call

    def told(status: int, final: bool) -> None:  # on the SIP thread
        loop.call_soon_threadsafe(progress.put_nowait, ("notify", status, final))

    def answered(status: int) -> None:  # on the SIP thread
        loop.call_soon_threadsafe(progress.put_nowait, ("answer", status, True))

    def refer() -> None:
        if call.ended:
            sent.set_exception(NotHanded(409, "call_over", "the caller hung up before the call was handed over"))
            return
        try:
            call.on_transfer_status, call.on_refer_answer = told, answered
            call.xfer(uri, pj.CallOpParam(True))
            sent.set_result(None)
        except pj.Error as exc:
            sent.set_exception(exc)

    stack.submit(refer)
    try:
        await asyncio.wrap_future(sent)
    except pj.Error as exc:
        stack.submit(_forget(call))
        return f"PJSIP did not send it: {exc.reason}"
    heard = _Heard()
    try:
        async with asyncio.timeout(wait):
            while (outcome := heard.told(*await or_gone(held.flow, progress.get()))) is None:
                pass
    except TimeoutError:
        stack.submit(_late(call, uri))
        raise NotHanded(409, "refer_outcome_unknown", f"the caller's side {heard.said()}, and within {wait:g} s said "
                        "neither that the person answered nor that the call to them failed: the call may yet reach "
                        "them (the edge hangs its leg up if the trunk says so later), and no second call is placed"
                        ) from None
    except BaseException:
        stack.submit(_forget(call))
        raise
    stack.submit(_forget(call))
    if isinstance(outcome, int) and outcome >= 300:
        raise NotHanded(409, "refer_failed", f"the caller's side took the REFER but reached nobody (SIP {outcome}): "
                        "the call stays with the bot")
    if isinstance(outcome, int):
        log.info("sipedge: session %s handed to %s by REFER (%d)", held.flow.session_id, uri, outcome)
    return outcome


class _Heard:
    """A REFER's progress as PJSUA tells it: the REFER's own answer (`onCallTsxState`) and each NOTIFY's
    sipfrag (`onCallTransferStatus`, which also reports a refused REFER, as a final failure)."""

    def __init__(self) -> None:
        self.answer: int | None = None
        self.notified = False  # a NOTIFY came: the trunk took the REFER, whatever its answer said
        self.failed: int | None = None  # a final failure heard before the REFER's own answer

    def told(self, kind: str, status: int, final: bool) -> int | str | None:
        """The outcome: a final sipfrag's status, or the REFER's refusal ("SIP 603"); None while unknown."""
        if kind == "answer":
            if self.answer is not None:
                return None
            self.answer = status
            if status >= 300 and not self.notified:
                return f"SIP {status}"
            return self.failed if status < 300 else None
        if status // 100 == 2:  # the person answered; or a trunk that takes REFER with no subscription
            return status
        if final and status >= 300:
            if self.notified or (self.answer is not None and self.answer < 300):
                return status
            self.failed = status  # PJSUA's report of the REFER's refusal, or a NOTIFY: its answer says which
            return None
        self.notified = True
        return None

    def said(self) -> str:
        return "took the REFER" if self.notified or (self.answer or 0) // 100 == 2 else "did not answer the REFER"


@dataclass(frozen=True)
class _Bridge:
    ring: float  # how long the person may ring
    time_limit: int  # how long the bridged call may last
    legs: Legs
    tell: Tell | None = None  # the dispatcher told of the person's leg, for the session's telephony line


async def _bridge(stack: SipStack, held: InboundCall, to: str, uri: str, refused: str, how: _Bridge) -> Handed:
    """The person called through the trunk, then bridged with the caller; the bot's stream released."""
    account = stack.outbound_accounts.get(held.trunk.name)
    if account is None:
        raise NotHanded(409, "transfer_no_route", f"trunk {held.trunk.name!r} places no calls here")
    leg = PersonLeg(asyncio.get_running_loop(), stack, held.call)
    try:
        person = await invite(stack, account, held.trunk, to, held.number, leg, how.legs, for_person=True)
    except pj.Error as exc:
        raise NotHanded(503, "transfer_failed", f"the REFER was refused ({refused}) and the call to the person "
                        f"could not be placed: {exc.reason}") from None
    try:
        await _answered_and_joined(stack, held, person, leg, refused, how)
    except BaseException:
        stack.submit(person.end)  # the person's call never outlives a transfer that did not happen
        raise
    log.info("sipedge: session %s bridged to %s (REFER %s) for %d s at most", held.flow.session_id, uri, refused,
             how.time_limit)
    start_billing(held, leg, how.time_limit, how.tell)
    end = SipEnd("edge", "bridged", 200, f"bridged to {uri[:200]} (the REFER: {refused})")
    return Handed("bridged", uri, 200, once(lambda: held.flow.release(end)))


def start_billing(held: InboundCall, leg: PersonLeg, time_limit: int, tell: Tell | None) -> None:
    """The bridged person's leg told to the dispatcher, in the background, where the trunk prices it."""
    line = held.trunk.price.line(held.trunk.name, "outbound") if held.trunk.price is not None else None
    if line is not None and tell is not None:
        task = asyncio.create_task(_bill_leg(tell, line, leg, time_limit))
        _billing.add(task)
        task.add_done_callback(_billing.discard)


async def _bill_leg(tell: Tell, line: dict[str, object], leg: PersonLeg, time_limit: int) -> None:
    """The person's leg told to the dispatcher as answered (now: it was just bridged), then as ended once it
    hangs up: the dispatcher prices the time between on its own clock, at the trunk's outbound price, as
    the session's. The limit bounds a leg whose end could not be told."""
    await tell({"event": "answered", **line, "time_limit_seconds": time_limit})
    await leg.gone.wait()
    await tell({"event": "ended", "trunk": line["trunk"]})


async def _answered_and_joined(stack: SipStack, held: InboundCall, person: SipCall, leg: PersonLeg,
                               refused: str, how: _Bridge) -> None:
    status = await leg.answered(held.flow, how.ring)
    if status != 200:
        raise NotHanded(409, "person_unanswered", f"the REFER was refused ({refused}) and the person did not "
                        f"answer the bridged call (SIP {status}, {how.ring:g} s at most): the call stays with the bot")
    joined: concurrent.futures.Future[None] = concurrent.futures.Future()

    def bridge() -> None:  # on the SIP thread, where neither leg can end meanwhile
        if held.call.ended or person.ended:
            joined.set_exception(NotHanded(409, "call_over", "a leg hung up as the two were being bridged"))
            return
        try:
            join_legs(stack, held, person, how.time_limit)
            joined.set_result(None)
        except pj.Error as exc:
            joined.set_exception(NotHanded(503, "transfer_failed", f"the person answered but the audio could not "
                                           f"be bridged ({exc.reason}): the call stays with the bot"))

    stack.submit(bridge)
    await asyncio.wrap_future(joined)


def join_legs(stack: SipStack, held: InboundCall, person: SipCall, time_limit: int) -> None:
    """On the SIP thread: the caller and the person bridged, each one's end ending the other, both hung up
    once `time_limit` is up."""
    held.call.bridge(person)
    held.call.events = _Ends(stack, person)  # from now on, either leg's end ends the other
    stack.submit_at(time.monotonic() + time_limit, _time_up(held, person, time_limit))


def _time_up(held: InboundCall, person: SipCall, time_limit: int) -> Callable[[], None]:
    """On the SIP thread, once the bridged call's time limit is up: both legs hung up (BYE)."""
    def hang_up() -> None:
        if held.call.ended and person.ended:
            return
        log.info("sipedge: session %s: the bridged call's time limit (%d s) is up: both legs hung up",
                 held.flow.session_id, time_limit)
        for call in (held.call, person):
            with contextlib.suppress(pj.Error):
                call.end()
    return hang_up


class PersonLeg:
    """The bridged call's events (`OutboundEvents`), from PJSIP's threads to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stack: SipStack, caller: SipCall) -> None:
        self._loop = loop
        self._stack = stack
        self.caller = caller
        self.picked = asyncio.Event()
        self.gone = asyncio.Event()
        self.status = 0
        self.bridged = False

    def picked_up(self) -> None:
        self._loop.call_soon_threadsafe(self.picked.set)

    def hung_up(self, status: int) -> None:
        self.status = status
        self._loop.call_soon_threadsafe(self.gone.set)
        if self.caller.bridged_to is not None:  # on the SIP thread: the person left, the caller goes too
            self._stack.submit(self.caller.end)

    def heard(self, pcm: bytes) -> None:
        pass  # the person's audio goes to the caller in the bridge, not to Python

    def pressed(self, digit: str) -> None:
        pass

    async def answered(self, flow: CallFlow, ring_seconds: float) -> int:
        """200 once the person answered; else their final status (487: rang out, cancelled)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ring_seconds):
                await or_gone(flow, self._settled())
        if self.picked.is_set() and not self.gone.is_set():
            return 200
        return self.status or 487


    async def _settled(self) -> None:
        """Until the person answered or their call ended."""
        waits = {asyncio.create_task(self.picked.wait()), asyncio.create_task(self.gone.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()


class _Ends:
    """A bridged caller's events: its hang-up ends the person's leg."""

    def __init__(self, stack: SipStack, person: SipCall) -> None:
        self._stack, self._person = stack, person

    def hung_up(self, status: int) -> None:
        self._stack.submit(self._person.end)

    def heard(self, pcm: bytes) -> None:
        pass

    def pressed(self, digit: str) -> None:
        pass


def once(work: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            work()
    return once


def _forget(call: SipCall) -> Callable[[], None]:
    def forget() -> None:
        call.on_transfer_status = call.on_refer_answer = None
    return forget


def _late(call: SipCall, uri: str) -> Callable[[], None]:
    """On the SIP thread, once the edge stopped waiting for an accepted REFER: a 2xx NOTIFY that comes later
    still hangs the edge's leg up (the caller is with the person), any other final one just ends the wait."""
    def late(status: int, final: bool) -> None:
        if status // 100 == 2:
            log.info("sipedge: a REFER to %s succeeded after the edge stopped waiting: its leg is hung up", uri)
            call.end(SipEnd("edge", "referred", status, f"handed to {uri[:200]} by REFER (its NOTIFY came late)"))
        if status // 100 == 2 or final:
            _forget(call)()

    def listen() -> None:
        call.on_refer_answer = None
        call.on_transfer_status = late
    return listen


async def or_gone(flow: CallFlow, work: Awaitable[T]) -> T:
    """`work`'s result; `NotHanded` (409 call_over) once the caller hung up first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.create_task(flow.caller_gone.wait())
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():  # a task told to cancel is done only once it has run again
        raise NotHanded(409, "call_over", "the caller hung up before the call was handed over")
    return task.result()
