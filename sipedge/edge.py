"""The edge's process: the SIP thread (stack.py) and the event loop that runs each admitted call's
flow (call_flow.py) against the dispatcher. An INVITE is admitted or refused on the SIP thread
(PJSIP has already sent `100 Trying`): a source no trunk allows is 403, a number none serves 404,
else `180 Ringing` at once while the flow asks for the session."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal

from sipedge.admission import Refused, admit
from sipedge.call_data import call_body
from sipedge.call_flow import CallFlow, run_call
from sipedge.config import EdgeConfig
from sipedge.dispatcher_link import DispatcherLink
from sipedge.sip_call import SipCall
from sipedge.stack import SipStack

log = logging.getLogger("sipedge")


class Edge:
    def __init__(self, config: EdgeConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        self.link = DispatcherLink(config.dispatcher_url)
        self.stack = SipStack(config, self._incoming)
        self._flows: set[asyncio.Future[None]] = set()

    def _incoming(self, call: SipCall, source: str, message: str) -> None:
        """On the SIP thread."""
        info = call.getInfo()
        decision = admit(self.config.trunks, source, info.localUri)
        if isinstance(decision, Refused):
            log.warning("sipedge: INVITE from %s to %s refused %d: %s", source, info.localUri, decision.status,
                        decision.reason)
            call.respond(decision.status)
            return
        flow = CallFlow(self._loop, call.playout)
        call.events = flow
        call.respond(180)
        body = call_body(info.remoteUri, info.localUri, info.callIdString, message)
        log.info("sipedge: call %s from %s to %s (trunk %s) ringing", info.callIdString, source, decision.number,
                 decision.trunk.name)

        def respond(status: int, retry_after: int | None) -> None:
            self.stack.submit(lambda: call.respond(status, retry_after))

        future = asyncio.run_coroutine_threadsafe(
            run_call(flow, self.link, decision.api_key, body, respond, lambda: self.stack.submit(call.end),
                     self.config.answer_seconds), self._loop)
        self._loop.call_soon_threadsafe(self._track, future)

    def _track(self, future: concurrent.futures.Future[None]) -> None:
        wrapped = asyncio.wrap_future(future)
        self._flows.add(wrapped)
        wrapped.add_done_callback(self._flows.discard)

    async def run(self) -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(signum, stop.set)
        self.stack.start()
        await asyncio.to_thread(self.stack.started.wait)
        if self.stack.failed is not None:
            await self.link.close()
            raise SystemExit(f"sipedge: the SIP stack did not start: {self.stack.failed}")
        print("sipedge: ready", flush=True)
        await stop.wait()
        log.info("sipedge: stopping; %d calls in flight are hung up", len(self._flows))
        await asyncio.to_thread(self.stack.stop)
        for flow in list(self._flows):
            flow.cancel()
        await asyncio.gather(*self._flows, return_exceptions=True)
        await self.link.close()
