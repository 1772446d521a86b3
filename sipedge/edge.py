"""The edge's process: the SIP thread (stack.py) and the event loop that runs each admitted call's
flow (call_flow.py) against the dispatcher. An INVITE is admitted or refused on the SIP thread
(PJSIP has already sent `100 Trying`): a source no trunk allows is 403, a number none serves 404,
a trunk over its source's limits, the edge full or draining 503 with Retry-After, else `180 Ringing`
while the flow asks for the session. Every answer is sent after PJSUA's callback returns. A stop
drains first (sipedge/drain.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import signal
import time
from collections.abc import Callable

from sipedge.ack_wait import ACK_WAIT_SECONDS, end_unacknowledged
from sipedge.admission import Refused, admit, dialog_peer, source_host
from sipedge.call_data import call_body, eval_token
from sipedge.call_flow import CallFlow, run_call
from sipedge.call_transfer import InboundCall, NotHanded
from sipedge.config import EdgeConfig
from sipedge.dispatcher_link import DispatcherLink
from sipedge.drain import DRAIN_SIGNAL, DRAINED_LINE, DRAINING, DRAINING_CODE, StopSignals, drained
from sipedge.refusal_log import PERIOD_SECONDS, RefusalLog
from sipedge.refusals import DEFAULT_RETRY_SECONDS
from sipedge.sip_call import SipCall
from sipedge.sip_end import EDGE_STOPPED
from sipedge.source_limits import SourceLimits
from sipedge.srtp_offer import NOT_ACCEPTABLE, srtp_refusal
from sipedge.stack import SipStack

log = logging.getLogger("sipedge")

# PJSUA's slots kept free of admitted calls, so that an INVITE over capacity still gets the edge's own
# 503 with Retry-After (PJSUA's answer when every slot is taken is a bare 486).
SLOTS_FOR_REFUSALS = 1
# A source's INVITEs: a trunk starts a few calls a second at most; a scanner sends hundreds.
SOURCE_INVITES, SOURCE_PERIOD_SECONDS, SOURCE_COOL_DOWN_SECONDS = 10, 1.0, 30.0


class Edge:
    def __init__(self, config: EdgeConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        self.link = DispatcherLink(config.dispatcher_url, config.dispatcher_credential, config.control_url)
        self.stack = SipStack(config, self._incoming, self._ended)
        self._flows: set[asyncio.Future[None]] = set()
        self._held: set[InboundCall] = set()  # the inbound calls whose flows run, on the event loop
        self.capacity = max(1, self.stack.max_calls() - SLOTS_FOR_REFUSALS)
        # The calls admitted and not yet ended: the calls themselves, not their PJSUA slots, which PJSUA
        # may give to a new call before the ended one is forgotten (in the same round of SIP events).
        self._admitted: set[SipCall] = set()
        self._legs: set[SipCall] = set()  # the edge's own calls to a person a caller is bridged to, until they end
        # The outbound calls taken from the dispatcher (sipedge/control.py), until their flows end: each holds a
        # PJSUA slot once its INVITE goes out, so inbound admission counts them as the control API does.
        self.placing: set[asyncio.Task[None]] = set()
        # Alone, or as the front's one worker, another trunk always finds a slot; a worker with others beside it
        # leaves spreading calls to Kamailio, which tries its next worker on a full one.
        beside = config.worker is not None and config.workers > 1
        share = self.capacity if beside else max(1, self.capacity - 1)
        self._limits = SourceLimits(SOURCE_INVITES, SOURCE_PERIOD_SECONDS, SOURCE_COOL_DOWN_SECONDS, share)
        self.refusals = RefusalLog()
        self.stack.on_unplayable = lambda source, uri, why: self.refusals.refused(source_host(source), uri, 480, why)
        # The edge's own account, which "off" trunks' numbers share, has SRTP once any trunk has (stack.py).
        self.shared_account_keys = any(trunk.srtp != "off" for trunk in config.trunks)
        self.draining = False  # stopping: no new call in either direction (sipedge/drain.py)

    def _incoming(self, call: SipCall, source: str, message: str) -> None:
        """On the SIP thread."""
        info = call.getInfo()
        host = source_host(source)
        decision = admit(self.config.trunks, source, info.localUri, call.credential)
        insecure = None if isinstance(decision, Refused) else srtp_refusal(
            decision.trunk.srtp, call.over_tls, call.srtp_mandatory, call.keyed, call.keys_offered,
            self.shared_account_keys, call.keys_doubt)
        if insecure is not None:
            decision = Refused(NOT_ACCEPTABLE, insecure)
        over: str | None
        if self.draining and not isinstance(decision, Refused):  # whatever its source's limits: no call is taken
            over, slotless = DRAINING, False
        else:
            over = self._limits.check(host)
            slotless = over is not None and self._limits.holds_most(host)  # not its rate: the source's share of calls
        if not isinstance(decision, Refused) and over is None:
            over = self.full()
            slotless = over is not None
        if isinstance(decision, Refused) or over is not None:
            status, why = (decision.status, decision.reason) if isinstance(decision, Refused) else (503, over or "")
            self.refusals.refused(host, info.localUri, status, why)
            retry_after = DEFAULT_RETRY_SECONDS if status == 503 else None
            # Only a worker's own want of a slot is worth the front's next worker: any other refusal
            # (and every one the dispatcher's answer makes) would be the same there, or ask it again.
            full = slotless and not isinstance(decision, Refused) and self.config.worker is not None
            self.stack.after_hold(call, lambda: call.respond(status, retry_after, full=full))
            return
        self._admitted.add(call)
        self._limits.started(host)
        call.admitted_from = host
        trunk = decision.trunk
        call.from_trunk = lambda source: dialog_peer(trunk, host, source)
        call.stranger_request = lambda source, method: self.refusals.ignored(
            source_host(source), method, f"not from the call's trunk {trunk.name!r}")
        flow = CallFlow(self._loop, call.playout)
        call.events = flow
        call.on_sip_end = flow.sip_ended
        self.stack.submit(lambda: call.respond(180))
        body = call_body(info.remoteUri, info.localUri, info.callIdString, message)
        log.info("sipedge: call %s from %s to %s (trunk %s) ringing", info.callIdString, source, decision.number,
                 decision.trunk.name)

        def respond(status: int, retry_after: int | None) -> None:
            if status >= 300:
                self.stack.after_hold(call, lambda: call.respond(status, retry_after))
            else:
                self.stack.submit(lambda: self._answer(call, flow.session_id))

        line = trunk.price.line(trunk.name, "inbound") if trunk.price is not None else None
        future = asyncio.run_coroutine_threadsafe(
            run_call(flow, self.link, decision.api_key, body, respond, lambda: self.stack.after_hold(call, call.end),
                     self.config.answer_seconds, decision.release, line, eval_token(message)), self._loop)
        self._loop.call_soon_threadsafe(self._track, future, InboundCall(call, flow, trunk, decision.number))

    def _answer(self, call: SipCall, session_id: str | None) -> None:
        """On the SIP thread: the call's 200 OK, and the wait for its ACK (sipedge/ack_wait.py). The wait's end
        runs after a round of PJSIP's events, so an ACK that came in while the thread was busy is taken first."""
        call.respond(200, None, session_id)
        self.stack.submit_at(time.monotonic() + ACK_WAIT_SECONDS, lambda: self._unacknowledged(call))

    def _unacknowledged(self, call: SipCall) -> None:
        if end_unacknowledged(call):
            self.refusals.unacknowledged(call.admitted_from or "", ACK_WAIT_SECONDS)

    def answered(self, session_id: str) -> InboundCall | None:
        """The answered call of `session_id` whose bot still has it (on the event loop), or None."""
        for held in self._held:
            flow = held.flow
            if (flow.session_id == session_id and flow.answered and not flow.caller_gone.is_set()
                    and flow.handed is None):
                return held
        return None

    def calls_in_flight(self) -> int:
        """Both directions: the inbound calls admitted, the bridged persons' calls and the outbound calls taken,
        not yet ended."""
        return len(self._admitted) + len(self._legs) + len(self.placing)

    def full(self) -> str | None:
        """Why the edge takes no call now, in either direction, naming the limit and what holds it; None while
        it has room."""
        if self.calls_in_flight() < self.capacity:
            return None
        whose = "this worker's" if self.config.worker is not None else "the edge's"
        return (f"{whose} {self.capacity} calls, inbound and outbound together, are all taken: "
                f"{len(self._admitted)} inbound, {len(self._legs)} bridged to a person, {len(self.placing)} outbound")

    def outbound_full(self) -> str | None:
        """Why the edge places no call now (an outbound call, a bridged person's): `full()`, or the calls it places
        already hold all but one of its calls, the one kept for the trunks' INVITEs; None while it may."""
        if (full := self.full()) is not None:
            return full
        placed, most = len(self.placing) + len(self._legs), max(1, self.capacity - 1)
        if placed < most:
            return None
        whose = "this worker's" if self.config.worker is not None else "the edge's"
        return (f"{whose} outbound calls hold {most} of its {self.capacity} calls, the most they may: the rest is "
                f"kept for the trunks' INVITEs ({len(self.placing)} outbound, {len(self._legs)} bridged to a person)")

    def leg(self, send: Callable[[], SipCall]) -> SipCall:
        """On the SIP thread: the call to a person `send` places for a bridge, held against the edge's capacity
        (with the PJSUA slot kept for refusals) until it ends; `NotHanded` (503 edge_full) when none is free,
        (503 edge_draining) while the edge drains."""
        if self.draining:
            raise NotHanded(503, DRAINING_CODE, f"{DRAINING}, so it places no call to the person (a bridge, or a warm "
                            "transfer): the call stays with the bot")
        full = self.outbound_full() or (None if len(self.stack.calls) < self.capacity else
                               f"PJSUA's {self.capacity} slots for calls are all taken")
        if full is not None:
            raise NotHanded(503, "edge_full", f"{full}, so there is no slot for the edge's own call to the person "
                            "(a bridge, or a warm transfer): the call stays with the bot")
        call = send()
        self._legs.add(call)
        return call

    def _ended(self, call: SipCall) -> None:
        """On the SIP thread, once PJSUA has ended `call`."""
        self._legs.discard(call)
        if call.admitted_from is not None and call in self._admitted:
            self._admitted.discard(call)
            self._limits.ended(call.admitted_from)

    def _track(self, future: concurrent.futures.Future[None], held: InboundCall) -> None:
        wrapped = asyncio.wrap_future(future)
        self._flows.add(wrapped)
        self._held.add(held)
        wrapped.add_done_callback(self._flows.discard)
        wrapped.add_done_callback(lambda _: self._held.discard(held))
        wrapped.add_done_callback(lambda _: self.collect_ended_call())

    def collect_ended_call(self) -> None:
        """A call's flow has ended: its objects that refer to each other (the flow and its keep-alive timer,
        the stream's websockets protocol and its parser, with its zlib state) are collected once the loop turns.
        Left to the collector's own counts they stayed: a worker makes few lasting objects, so its young
        collections came tens of seconds apart and its older generations' not within a soak's minutes, while a
        call's objects, promoted past the young ones during its 60 s, waited there. Each call left about 80 KB
        behind, 3.5 MB a minute at 49 calls. A collection here walks only what was made since the freeze
        (`run`), a few thousand objects."""
        self._loop.call_soon(gc.collect)

    def in_flight(self) -> int:
        """What a drain waits for: the calls up in either direction, and the inbound flows still telling the
        dispatcher how theirs ended."""
        return self.calls_in_flight() + len(self._flows)

    async def run(self) -> None:
        stop = StopSignals()
        if self.config.worker is None:
            stop.take(self._loop, (signal.SIGTERM, signal.SIGINT))
        else:  # a worker's stops are its supervisor's: a terminal's Ctrl-C or hang-up reaches the whole group
            stop.take(self._loop, (DRAIN_SIGNAL,), at_once=(signal.SIGTERM,))
            for signum in (signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
        self.stack.start()
        await asyncio.to_thread(self.stack.started.wait)
        if self.stack.failed is not None:
            await self.link.close()
            raise SystemExit(f"sipedge: the SIP stack did not start: {self.stack.failed}")
        # Everything made so far (the modules, PJSUA2's classes, the configuration) lives as long as the
        # process: out of the collector's sight, its full collections walk only what calls make since,
        # not the whole heap again (they took half the event loop's CPU during a call).
        gc.freeze()
        print("sipedge: ready", flush=True)
        periods = asyncio.create_task(self._end_periods())
        why = EDGE_STOPPED
        try:
            await stop.asked.wait()
            ended_by_itself = await self._drain(stop)
            why = self._stop_why(stop)
            if ended_by_itself and self.config.worker is not None:
                # A worker stays up, answering new calls 503, until its supervisor stops it (SIGTERM): the front would
                # send an INVITE to one that exited, unanswered until its probes found it gone.
                print(DRAINED_LINE, flush=True)
                await stop.now.wait()
        finally:
            periods.cancel()
        log.info("sipedge: stopping; %d calls in flight are hung up", self.calls_in_flight())
        await asyncio.to_thread(self.stack.stop, why=why)
        for flow in list(self._flows):
            flow.cancel()
        await asyncio.gather(*self._flows, return_exceptions=True)
        await self.link.close()

    def _stop_why(self, stop: StopSignals) -> str:
        """What the calls still up at the stop are told ended them (their `sip_ended` reason), read as the drain
        ends."""
        if self.config.drain_seconds == 0:
            return "the edge stopped (drain_seconds = 0: no drain)"
        if stop.now.is_set():
            return "the edge was stopped at once, before its drain ended"
        return f"the edge's drain ended (its {self.config.drain_seconds} s passed)"

    async def _drain(self, stop: StopSignals) -> bool:
        """New calls refused from now; the calls in flight go on until they end, `drain_seconds` pass or a second
        signal comes. Whether every call ended by itself (none are left to hang up)."""
        self.draining = True
        seconds = self.config.drain_seconds
        if seconds == 0 or stop.now.is_set():
            return False
        if self.in_flight() == 0:
            return True
        log.warning("sipedge: draining: %d calls in flight go on until they end, for %d s at most; new calls are "
                    "refused 503 (a second stop signal hangs them up now)", self.calls_in_flight(), seconds)
        left = await drained(self.in_flight, seconds, stop.now)
        if left == 0:
            log.warning("sipedge: drained: every call in flight has ended")
            return True
        why = "a second signal came" if stop.now.is_set() else f"the drain's {seconds} s have passed"
        log.warning("sipedge: %s with calls still in flight: they are hung up", why)
        return False

    async def _end_periods(self) -> None:
        """The refusals' totals line each PERIOD_SECONDS (sipedge/refusal_log.py), and PJSIP's entries' count
        (sipedge/pjsip_log.py), draining included."""
        while True:
            await asyncio.sleep(PERIOD_SECONDS)
            self.refusals.end_period()
            self.stack.pjsip_log.end_period()
