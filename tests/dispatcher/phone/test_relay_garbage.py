"""A call's relay frees both its sockets when it ends, a side that failed included. A failure awaited where its
task was held made a cycle (the failure's traceback held that frame, the frame the task, the task its failure):
each call that ended with a send to a side already gone kept both its sockets and their buffers until Python's
collector made a full collection, hours apart in a dispatcher. The collector is off here: only counted
references free them."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

import pytest
from starlette.types import Message

from dispatcher.phone.relay import CallStats, _stopped, pump_both
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side
from tests.support.collector import collector_off

MEDIA: Message = {"type": "websocket.receive", "text": '{"event": "media"}'}


@pytest.mark.parametrize(("carrier", "bot", "ended_by"), [
    (lambda: Side(MEDIA), lambda: Side(DISCONNECT, gone=True), "bot"),  # the carrier's frame goes to a bot gone
    (lambda: Side(DISCONNECT, gone=True), lambda: Side(MEDIA), "carrier"),  # the bot's frame to a caller gone
], ids=["to a bot gone", "to a caller gone"])
async def test_a_call_whose_last_send_failed_frees_both_sides_when_it_ends(
    carrier: Callable[[], Side], bot: Callable[[], Side], ended_by: str,
) -> None:
    with collector_off():
        sides = carrier(), bot()
        left = [weakref.ref(side) for side in sides]
        assert await pump_both(*sides, CallStats()) == ended_by
        del sides
        await asyncio.sleep(0)
        assert [side() for side in left] == [None, None], "an ended call's sockets outlived it"


async def test_a_task_that_failed_raised_by_stopped_goes_with_its_failure() -> None:
    async def read() -> None:
        raise ConnectionResetError("the carrier's socket")

    with collector_off():
        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        left = weakref.ref(task)
        with pytest.raises(ConnectionResetError):
            await _stopped(task)
        del task
        assert left() is None, "the failed task outlived its failure"
