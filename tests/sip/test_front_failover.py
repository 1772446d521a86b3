"""The edge's front (Kamailio before its PJSIP workers) tries its next worker only when a worker had
no slot for the call. A refusal the worker made for the dispatcher's sake (here its `429` to POST
/start) reaches the trunk once, as the worker gave it, and the dispatcher is asked once: another
worker would only ask it again. Refused calls leave no slot taken: afterwards every worker holds its
full share of calls, and the call past them all gets the front's own 503, unmarked. The dispatcher
is bench/sip_capacity.py's fake (its stream an echo), here refusing starts while told to."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bench.sip_capacity import FakeDispatcher
from sipedge.front_config import worker_capacity
from sipedge.worker_place import FULL_HEADER
from tests.sip.caller_cue import CuedCaller
from tests.sip.conftest import NUMBER, run_edge
from tests.sip.sipp import run_sipp
from tests.sip.test_calls import next_answered
from tests.sip.test_refusals import retry_after
from tests.support.ports import free_port, free_port_pair

pytestmark = pytest.mark.slow  # Kamailio, two PJSIP workers and SIPp

WORKERS = 2
RETRY_SECONDS = 17  # the dispatcher's Retry-After, which the trunk must get as it was
REFUSED_CALLS = 4


class RefusingDispatcher(FakeDispatcher):
    """The fake, counting its starts; while `refusing`, each is the dispatcher's 429 (a key over its rate)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = True
        self.starts = 0

    async def _start(self, request: web.Request) -> web.Response:
        self.starts += 1
        if self.refusing:
            return web.json_response({"error": {"code": "rate_limited", "message": "over the key's start rate"}},
                                     status=429, headers={"Retry-After": str(RETRY_SECONDS)})
        return await super()._start(request)


@pytest.fixture
async def dispatcher() -> AsyncIterator[RefusingDispatcher]:
    fake = RefusingDispatcher()
    async with fake:
        yield fake


async def test_a_refusal_for_the_dispatchers_sake_reaches_the_trunk_once_and_leaves_every_worker_its_full_share(
    dispatcher: RefusingDispatcher, tmp_path: Path,
) -> None:
    """One edge for both steps: one refused call (the dispatcher asked once), more refused at once, then
    every worker's every slot holds a call and the next call is the front's 503."""
    slots = WORKERS * worker_capacity()
    with run_edge(f"http://127.0.0.1:{dispatcher.port}", tmp_path, workers=WORKERS) as edge:
        call = await asyncio.to_thread(run_sipp, "call_busy", NUMBER, edge.sip_port, edge.workdir)
        log = edge.log()
        assert call.returncode == 0, f"{call.output}\n{log}"
        assert call.statuses().count(486) == 1 and call.statuses()[-1] == 486, call.messages
        assert retry_after(call.messages, 486) == RETRY_SECONDS, call.messages
        assert dispatcher.starts == 1, log  # no other worker asked it again
        assert log.count("refused 486") == 1, log

        refused = await asyncio.to_thread(run_sipp, "call_busy", NUMBER, edge.sip_port, edge.workdir,
                                          calls=REFUSED_CALLS)
        assert refused.returncode == 0, f"{refused.output}\n{edge.log()}"
        assert dispatcher.starts == 1 + REFUSED_CALLS, edge.log()
        dispatcher.refusing = False
        dispatcher.wanted = slots
        # The held calls stay until cued, each by its Call-ID (SIPp's -cid_str numbers them from 1: %u).
        sip_port, tag = free_port(socket.SOCK_DGRAM), uuid.uuid4().hex
        cues = [CuedCaller(sip_port, f"held-{n}-{tag}@127.0.0.1") for n in range(1, slots + 1)]
        held = asyncio.create_task(asyncio.to_thread(
            run_sipp, "call_until_cued", NUMBER, edge.sip_port, edge.workdir, media_port=free_port_pair(2 * slots),
            calls=slots, sip_port=sip_port, call_id=f"held-%u-{tag}@127.0.0.1"))
        try:
            await asyncio.wait_for(dispatcher.all_open.wait(), 30)  # every slot of every worker holds a call
            over = await asyncio.to_thread(run_sipp, "call_unavailable", NUMBER, edge.sip_port, edge.workdir)
            # Each held call answered (the edge's line of it, once its 200 went out): it then waits for its cue.
            await next_answered(edge, slots - 1)
        finally:
            for cue in cues:
                cue.cue()
        calls = await held
        log = edge.log()
    assert calls.returncode == 0, f"{calls.output}\n{log}"
    # Each INVITE answered, each BYE too (once each: a loaded edge's 200 to a BYE sent again comes twice).
    assert len(calls.answered(200)) == 2 * slots, sorted(calls.answered(200))
    assert over.returncode == 0 and over.statuses()[-1] == 503, f"{over.messages}\n{log}"
    assert retry_after(over.messages, 503) is not None, over.messages
    assert FULL_HEADER.lower() not in over.messages.lower()  # the workers' mark stays inside the edge
    assert dispatcher.starts == 1 + REFUSED_CALLS + slots, log  # the call past them all asked nothing
