"""One call the edge places through a trunk, on the event loop (docs/sip.md#outbound-calls).

The dispatcher has made the session (a carrier stream's token) and hands the call over
(sipedge/control.py). The flow opens the call's stream first and sends a carrier's handshake, so the
session's bot is claimed (or started) and joins while nothing rings yet: the INVITE goes out only
once the bot has joined, so the callee never answers to silence. Then it rings at most the trunk's
`ring_seconds` (past them: CANCEL, `no_answer`), and the far end's answer is the outcome the
dispatcher records (`answered`, `busy`, `no_answer`, `rejected` with its SIP code, or `not_placed`
when the INVITE never went out). Answered, the call runs as an inbound one does; otherwise the
stream is closed and the dispatcher has ended the session with the outcome as its reason."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pjsua2 as pj

from sipedge import stream_frames
from sipedge.call_flow import CallFlow, _bot_to_caller, _caller_to_bot, edge_stopping
from sipedge.call_reports import CallReports
from sipedge.config import Trunk
from sipedge.dispatcher_link import CallToken, DispatcherLink
from sipedge.invite_pace import InvitePace
from sipedge.outbound_sip import OutboundEvents, place
from sipedge.playout import Playout
from sipedge.refusals import SipRefusal
from sipedge.sip_call import SipCall
from sipedge.sip_end import SipEnd, edge_hung_up
from sipedge.stack import SipStack

log = logging.getLogger("sipedge")

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})  # 487: the ringing timeout's own CANCEL
CANCEL_SECONDS = 5.0  # for the far end's 487 after a CANCEL, before the call is given up here


@dataclass(frozen=True)
class CallOrder:
    """What the dispatcher hands over: the session, its stream's URL (a secret until spent), the call."""

    session_id: str
    stream_url: str
    to: str
    caller_id: str  # the number the call comes from
    trunk: str
    edge_url: str | None = None  # this edge as the dispatcher named it, for the stream's `start`


def outcome_of(status: int) -> str:
    """The far end's final answer to the INVITE, as an outcome."""
    if 200 <= status < 300:
        return "answered"
    if status in BUSY:
        return "busy"
    if status in NO_ANSWER:
        return "no_answer"
    return "rejected"


class OutboundFlow(CallFlow):
    def __init__(self, loop: asyncio.AbstractEventLoop, playout: Playout) -> None:
        super().__init__(loop, playout)
        self.picked = asyncio.Event()
        self.final_status = 0  # the INVITE's final answer, once the call ended

    def picked_up(self) -> None:
        """The far end's 200 OK, ACKed: its moment read here, on the SIP thread (what its minutes count from)."""
        self._loop.call_soon_threadsafe(self._picked_up, time.monotonic())

    def _picked_up(self, at: float) -> None:
        self.answered_at = self.answered_at or at
        self.picked.set()

    def sip_ended(self, end: SipEnd) -> None:
        """The far end's BYE is the callee's here: PJSUA's report names the trunk's side the caller."""
        super().sip_ended(replace(end, by="callee") if end.by == "caller" else end)

    def _hung_up(self, status: int) -> None:
        self.final_status = status
        self.caller_gone.set()


async def run_outbound(order: CallOrder, trunk: Trunk, stack: SipStack, link: DispatcherLink,
                       reports: CallReports, answer_seconds: float, pace: InvitePace | None = None) -> None:
    flow = OutboundFlow(asyncio.get_running_loop(), Playout())
    stream = await link.open_stream(CallToken(order.stream_url, order.session_id))
    if isinstance(stream, SipRefusal):
        await _report(reports, order, "not_placed", detail=stream.why)
        return
    call: SipCall | None = None
    stream_id = uuid.uuid4().hex
    tasks: list[asyncio.Task[None]] = []
    try:
        for frame in stream_frames.handshake(stream_id, order.session_id, order.caller_id, order.to,
                                             order.edge_url or link.edge_url):
            await stream.send(frame)
        spoke = asyncio.Event()
        tasks = [asyncio.create_task(_bot_to_caller(stream, flow.playout, spoke)),
                 asyncio.create_task(_caller_to_bot(stream, flow, stream_id))]
        why = await _until_joined(reports, order.session_id, tasks[0], answer_seconds)
        if why is not None:
            await _report(reports, order, "not_placed", detail=why)
            return
        if pace is not None:
            await pace.turn(trunk.name, trunk.cps, f"call to {order.to} (session {order.session_id})")
        placed = await _invite(stack, trunk, order, flow)
        if isinstance(placed, str):
            await _report(reports, order, "not_placed", detail=placed)
            return
        call = placed
        log.info("sipedge: call %s to %s through trunk %s (session %s) ringing", order.session_id, order.to,
                 trunk.name, order.session_id)
        status = await _until_answered(flow, stack, placed, trunk.ring_seconds)
        outcome = outcome_of(status)
        await _report(reports, order, outcome, sip_status=status)
        if outcome != "answered":
            return
        flow.answered = True
        gone = asyncio.create_task(flow.caller_gone.wait())
        await asyncio.wait([tasks[0], gone], return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        log.info("sipedge: call %s (session %s) ended by the %s", order.session_id, order.session_id,
                 "callee" if flow.caller_gone.is_set() else "bot's side")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The callee's end is told before the stream closes, so the session's end (its webhook, its report)
        # finds it; the edge's own BYE, once the bot's side ended, as it is sent.
        told = flow.answered and flow.caller_gone.is_set()
        if told:
            await _tell_end(reports, order, flow.timed(flow.sip_end))
        await stream.close()
        if call is not None and not flow.caller_gone.is_set():
            stack.submit(call.end)
            if flow.answered:
                await _tell_end(reports, order, flow.timed(edge_hung_up(True)))
        elif flow.answered and not told:  # the callee's BYE came while the stream closed
            await _tell_end(reports, order, flow.timed(flow.sip_end))


async def _until_joined(reports: CallReports, session_id: str, bot_side: asyncio.Task[None],
                        answer_seconds: float) -> str | None:
    """None once the session's bot joined; else why the call is not placed."""
    joined = asyncio.create_task(reports.until_joined(session_id))
    try:
        done, _ = await asyncio.wait({joined, bot_side}, timeout=answer_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        joined.cancel()
    if not done:
        return f"the bot was not ready within {answer_seconds:g} s"
    if joined not in done:
        return "the dispatcher closed the call's stream before its bot was ready"
    ended = joined.result()
    return None if ended is None else f"the session {ended} before its bot joined"


async def _invite(stack: SipStack, trunk: Trunk, order: CallOrder, flow: OutboundFlow) -> SipCall | str:
    """The call, its INVITE sent (on the SIP thread); else why PJSIP would not send it."""
    account = stack.outbound_accounts.get(trunk.name)
    if account is None:
        return f"trunk {trunk.name} has no termination_uri"
    try:
        call = await invite(stack, account, trunk, order.to, order.caller_id, flow, on_sip_end=flow.sip_ended)
    except pj.Error as exc:
        return f"PJSIP did not send the INVITE: {exc.reason}"
    call.playout = flow.playout  # the bot's audio, once answered, plays to the callee
    return call


async def invite(stack: SipStack, account: pj.Account, trunk: Trunk, to: str, caller_id: str,
                 events: OutboundEvents,
                 counted: Callable[[Callable[[], SipCall]], SipCall] = lambda send: send(),
                 for_person: bool = False, on_sip_end: Callable[[SipEnd], None] | None = None) -> SipCall:
    """A call to `to` through `trunk` as `caller_id`, its INVITE sent on the SIP thread; `pj.Error` if PJSIP
    would not send it. `counted` sends it there, within the edge's capacity (or raises why not). A call
    `for_person` is a transfer's: what is heard on it goes to a person, not only to the bot."""
    sent: concurrent.futures.Future[SipCall] = concurrent.futures.Future()
    call_token = (stack.place.front.call_token or None) if stack.place.front is not None else None

    def send() -> None:
        try:
            sent.set_result(counted(lambda: stack.outgoing(lambda on_end: place(
                account, trunk, to, caller_id, stack.config.advertised, on_end, events, call_token, for_person,
                on_sip_end))))
        except Exception as exc:  # (PJSIP's refusal, or `counted`'s: the awaiting side raises it)
            sent.set_exception(exc)

    stack.submit(send)
    return await asyncio.wrap_future(sent)


async def _until_answered(flow: OutboundFlow, stack: SipStack, call: SipCall, ring_seconds: float) -> int:
    """The INVITE's final status: 200 once answered; past `ring_seconds` the call is cancelled:
    487, whatever PJSIP then reports (it reports the status of its own hang-up, not the far end's)."""
    picked = asyncio.create_task(flow.picked.wait())
    gone = asyncio.create_task(flow.caller_gone.wait())
    try:
        await asyncio.wait({picked, gone}, timeout=ring_seconds, return_when=asyncio.FIRST_COMPLETED)
        if flow.picked.is_set() and not flow.caller_gone.is_set():
            return 200
        if flow.caller_gone.is_set():
            return flow.final_status
        stack.submit(call.end)  # CANCEL
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flow.caller_gone.wait(), CANCEL_SECONDS)
        return 487
    finally:
        picked.cancel()
        gone.cancel()


async def _tell_end(reports: CallReports, order: CallOrder, end: SipEnd | None) -> None:
    """An answered call's SIP end, with its answered seconds, for its session's timeline, webhook and price;
    nothing while the edge stops (PJSIP hung its calls up: no end of theirs to tell)."""
    if end is not None and not edge_stopping():
        await reports.sip_end(order.session_id, end.as_json())


async def _report(reports: CallReports, order: CallOrder, outcome: str, *, sip_status: int | None = None,
                  detail: str | None = None) -> None:
    report: dict[str, Any] = {"outcome": outcome, "trunk": order.trunk}
    if sip_status is not None and outcome != "answered":
        report["sip_status"] = sip_status
    if detail is not None:
        report["detail"] = detail[:256]
    log.info("sipedge: call %s (session %s) %s%s", order.session_id, order.session_id, outcome,
             f" ({sip_status})" if sip_status and outcome != "answered" else "")
    await reports.outcome(order.session_id, report)
