"""A call's objects that refer to each other go when its flow ends, not when Python's collector next comes
due. In an edge's worker that was not within a 30-minute soak: each call left its flow and its stream's
websockets protocol behind (about 80 KB with its zlib state), and the edge grew 3.5 MB a minute at 49
calls (docs/performance.md, the soak). The collector's own schedule is switched off here, as it
effectively was there, so that only the edge's collection can free them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import ipaddress
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sipedge.call_flow import CallFlow
from sipedge.call_transfer import InboundCall
from sipedge.config import EdgeConfig, Trunk
from sipedge.control import Control
from sipedge.edge import Edge
from sipedge.playout import Playout
from sipedge.stack import PJSUA_CALLS

TRUNK = Trunk("loopback", (ipaddress.ip_network("127.0.0.1/32"),), {"+14155550199": None})


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def ended_flow(loop: asyncio.AbstractEventLoop) -> CallFlow:
    """A flow whose keep-alive ran and stopped, as every answered call's does: its timer and the timer's
    callback refer to each other and to the flow."""
    flow = CallFlow(loop, Playout())
    flow.keep_alive()()
    return flow


async def test_an_ended_calls_flow_is_freed_once_its_flow_ends(collector_off: None) -> None:
    loop = asyncio.get_running_loop()
    edge = Edge(EdgeConfig("http://127.0.0.1:9", "127.0.0.1", 5060, 20000, 2 * PJSUA_CALLS, 30.0, (TRUNK,)), loop)
    try:
        flow = ended_flow(loop)
        flows = [weakref.ref(flow)]
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        edge._track(finished, InboundCall(cast(Any, SimpleNamespace()), flow, TRUNK, "+14155550199"))
        del flow
        finished.set_result(None)  # the call's flow, run_call, has ended
        for _ in range(5):
            await asyncio.sleep(0)
        assert [ref() for ref in flows] == [None], "an ended call's flow outlived it"
    finally:
        await edge.link.close()


async def test_an_ended_outbound_calls_flow_is_freed_once_its_task_ends(collector_off: None) -> None:
    loop = asyncio.get_running_loop()
    edge = Edge(EdgeConfig("http://127.0.0.1:9", "127.0.0.1", 5060, 20000, 2 * PJSUA_CALLS, 30.0, (TRUNK,)), loop)
    control = Control(edge, "the edge's control secret")
    try:
        flow = ended_flow(loop)
        flows = [weakref.ref(flow)]

        async def placed(flow: CallFlow) -> None:  # an outbound call's task, holding its flow until it ends
            await asyncio.sleep(0)

        task = asyncio.create_task(placed(flow))
        del flow
        edge.placing.add(task)
        task.add_done_callback(control._done)  # as the control API tracks the outbound calls it takes
        await task
        for _ in range(5):
            await asyncio.sleep(0)
        assert [ref() for ref in flows] == [None], "an ended outbound call's flow outlived it"
    finally:
        await control.close()
        await edge.link.close()


async def test_without_a_collection_an_ended_flow_stays(collector_off: None) -> None:
    # The test above would pass for nothing if its flow went on its own (by its count of references).
    flow = weakref.ref(ended_flow(asyncio.get_running_loop()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert flow() is not None
    gc.collect()
    assert flow() is None
