"""A caller handed to a person, cold (docs/sip.md#handing-a-call-to-a-person): the edge sends the caller's
side a REFER (RFC 3515) whose Refer-To is the person, and follows the NOTIFYs' sipfrag. A 2xx there: the
trunk has called the person and connected the caller, so the edge hangs its leg up and the bot's stream
ends. A REFER refused (405, 501, 603, any final failure) or no final NOTIFY within REFER_SECONDS: where
the person is a number and the trunk places calls, the edge calls them through the trunk's termination
and bridges the two legs in PJSUA's conference bridge, releasing the bot (the edge then keeps both legs
until either hangs up). Anything else is `NotHanded`, the call still with its bot, nothing changed.

Runs on the event loop; PJSUA2's calls go to the SIP thread (`SipStack.submit`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pjsua2 as pj

from sipedge.call_flow import CallFlow
from sipedge.call_policy import destination_allowed
from sipedge.config import Trunk
from sipedge.outbound_call import invite
from sipedge.outbound_sip import target_uri
from sipedge.sip_call import SipCall
from sipedge.sip_end import SipEnd
from sipedge.stack import SipStack

log = logging.getLogger("sipedge")
T = TypeVar("T")

REFER_SECONDS = 8.0  # from the REFER to its final NOTIFY: a trunk that takes REFER answers within seconds
PERSON_RING_SECONDS = 12.0  # bridged: how long the person may ring (the trunk's ring_seconds, if shorter)


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


def person_uri(trunk: Trunk, to: str) -> str | None:
    """A sip: URI as given; a number at the trunk's termination host; None for a number with no termination."""
    if to.startswith(("sip:", "sips:")):
        return to
    return target_uri(trunk, to) if trunk.termination_uri is not None else None


async def hand_over(stack: SipStack, held: InboundCall, to: str) -> Handed:
    uri = person_uri(held.trunk, to)
    if uri is None:
        raise NotHanded(409, "transfer_no_route", f"trunk {held.trunk.name!r} has no termination_uri, so the edge has "
                        "no host to name a number at (a REFER's Refer-To) nor to call it through: give the trunk a "
                        "termination_uri, or transfer to a sip: URI")
    number = not to.startswith(("sip:", "sips:"))
    if number and not destination_allowed(held.trunk.destinations, to):  # the trunk pays for a REFER's call too
        raise NotHanded(409, "target_not_routed", f"trunk {held.trunk.name!r} does not call {to} (its `destinations` "
                        "in the edge's file): the call stays with the bot")
    taken = await _refer(stack, held, uri)
    if isinstance(taken, int):
        end = SipEnd("edge", "referred", taken, f"handed to {uri[:200]} by REFER")
        return Handed("referred", uri, taken, _once(lambda: stack.submit(lambda: held.call.end(end))))
    refused = taken
    log.warning("sipedge: session %s: REFER to %s not taken (%s)", held.flow.session_id, uri, refused)
    if not number or held.trunk.termination_uri is None:
        raise NotHanded(409, "refer_refused", f"the caller's side did not take the REFER ({refused}), and only a "
                        "number can be bridged instead (through the trunk's termination): the call stays with the bot")
    return await _bridge(stack, held, to, uri, refused)


async def _refer(stack: SipStack, held: InboundCall, uri: str) -> int | str:
    """The 2xx a NOTIFY said (the trunk has the call to the person); else why the REFER was not taken."""
    loop = asyncio.get_running_loop()
    progress: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
    sent: concurrent.futures.Future[None] = concurrent.futures.Future()
    call = held.call

    def told(status: int, final: bool) -> None:  # on the SIP thread
        loop.call_soon_threadsafe(progress.put_nowait, (status, final))

    def refer() -> None:
        if call.ended:
            sent.set_exception(NotHanded(409, "call_over", "the caller hung up before the call was handed over"))
            return
        try:
            call.on_transfer_status = told
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
    try:
        async with asyncio.timeout(REFER_SECONDS):
            while True:
                status, final = await _or_gone(held.flow, progress.get())
                if status // 100 == 2:
                    break
                if final or status >= 300:
                    stack.submit(_forget(call))
                    return f"SIP {status}"
    except TimeoutError:
        stack.submit(_forget(call))  # a NOTIFY that comes later changes nothing: the call stays as it is
        return f"no final NOTIFY within {REFER_SECONDS:g} s"
    log.info("sipedge: session %s handed to %s by REFER (%d)", held.flow.session_id, uri, status)
    return status


async def _bridge(stack: SipStack, held: InboundCall, to: str, uri: str, refused: str) -> Handed:
    """The person called through the trunk, then bridged with the caller; the bot's stream released."""
    account = stack.outbound_accounts.get(held.trunk.name)
    if account is None:
        raise NotHanded(409, "transfer_no_route", f"trunk {held.trunk.name!r} places no calls here")
    if len(stack.calls) >= stack.max_calls() - 1:  # the last slot stays the refusals' (sipedge/edge.py)
        raise NotHanded(503, "edge_full", f"the REFER was not taken ({refused}) and the edge has no call slot "
                        "left for the person's call: the call stays with the bot")
    leg = PersonLeg(asyncio.get_running_loop(), stack, held.call)
    try:
        person = await invite(stack, account, held.trunk, to, held.number, leg)
    except pj.Error as exc:
        raise NotHanded(503, "transfer_failed", f"the REFER was not taken ({refused}) and the call to the person "
                        f"could not be placed: {exc.reason}") from None
    try:
        await _answered_and_joined(stack, held, person, leg, refused)
    except BaseException:
        stack.submit(person.end)  # the person's call never outlives a transfer that did not happen
        raise
    log.info("sipedge: session %s bridged to %s (REFER %s)", held.flow.session_id, uri, refused)
    end = SipEnd("edge", "bridged", 200, f"bridged to {uri[:200]} (the REFER: {refused})")
    return Handed("bridged", uri, 200, _once(lambda: held.flow.release(end)))


async def _answered_and_joined(stack: SipStack, held: InboundCall, person: SipCall, leg: PersonLeg,
                               refused: str) -> None:
    ring = min(held.trunk.ring_seconds, PERSON_RING_SECONDS)
    status = await leg.answered(held.flow, ring)
    if status != 200:
        raise NotHanded(409, "person_unanswered", f"the REFER was not taken ({refused}) and the person did not "
                        f"answer the bridged call (SIP {status}, {ring:g} s at most): the call stays with the bot")
    joined: concurrent.futures.Future[None] = concurrent.futures.Future()

    def bridge() -> None:  # on the SIP thread, where neither leg can end meanwhile
        if held.call.ended or person.ended:
            joined.set_exception(NotHanded(409, "call_over", "a leg hung up as the two were being bridged"))
            return
        try:
            held.call.bridge(person)
            held.call.events = _Ends(stack, person)  # from now on, either leg's end ends the other
            joined.set_result(None)
        except pj.Error as exc:
            joined.set_exception(NotHanded(503, "transfer_failed", f"the person answered but the audio could not "
                                           f"be bridged ({exc.reason}): the call stays with the bot"))

    stack.submit(bridge)
    await asyncio.wrap_future(joined)


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
                await _or_gone(flow, self._settled())
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


def _once(work: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            work()
    return once


def _forget(call: SipCall) -> Callable[[], None]:
    def forget() -> None:
        call.on_transfer_status = None
    return forget


async def _or_gone(flow: CallFlow, work: Awaitable[T]) -> T:
    """`work`'s result; `NotHanded` (409 call_over) once the caller hung up first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.create_task(flow.caller_gone.wait())
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        raise NotHanded(409, "call_over", "the caller hung up before the call was handed over")
    return task.result()
