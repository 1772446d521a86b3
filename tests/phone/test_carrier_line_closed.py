"""The carrier's caller stops speaking when its line closes. `say` waits until every frame is sent
on the line; a line closed under it (a dispatcher that drops the call, a ping lost on a loaded
machine) used to leave that wait with nothing to end it, so a test hung past its timeout with an
idle event loop. It now fails at once with the close."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.carriers import FRAME_SAMPLES, CarrierCall


async def test_speaking_on_a_line_the_far_end_closed_fails_with_the_close() -> None:
    async def hang_up_after_the_first_messages(ws: ServerConnection) -> None:
        await ws.recv()  # `connected`
        await ws.recv()  # `start`
        await ws.close(code=1011)

    async with serve(hang_up_after_the_first_messages, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call = CarrierCall("twilio", f"ws://127.0.0.1:{port}/ws/twilio")
        await call.open()
        await call.handshake()
        speech = bytes(FRAME_SAMPLES * 2 * 500)  # 10 s: far more than is sent before the close
        with pytest.raises(ConnectionError, match="the line closed"):
            await asyncio.wait_for(call.say(speech), 60)
