"""A caller whose connection goes from under its data channel (the bot crashed or hung up, and ICE's
consent expired before the association was stopped) prints no "Task exception was never retrieved":
aiortc's own tasks that send the channel's chunks then drop them. A real aiortc peer answers the
caller's offer; the caller's ICE connection is then closed as aioice closes it when consent expires,
and the caller's channel still has a message to send (a ping, an RTVI message)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from voicefleet.loadtest.webrtc import WebRTCClient


async def test_a_message_sent_as_the_connection_goes_fails_no_task_nobody_awaits() -> None:
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    bot = RTCPeerConnection()

    async def answer(offer: dict[str, Any]) -> dict[str, Any]:
        await bot.setRemoteDescription(RTCSessionDescription(**offer))
        await bot.setLocalDescription(await bot.createAnswer())
        return {"sdp": bot.localDescription.sdp, "type": bot.localDescription.type}

    client = WebRTCClient("http://bot/api/offer", signal=answer, ice_loopback=True)
    try:
        await client.connect()
        await asyncio.wait_for(client._channel_open.wait(), 10)
        assert client.pc.sctp is not None
        await client.pc.sctp.transport.transport._connection.close()  # what aioice does once consent has expired
        client._channel.send("the caller's last message")  # the channel is still open: the association is up
        await asyncio.sleep(1.0)  # its send, the pings, the connection's own close, all run out
    finally:
        await client.close()
        await bot.close()
    gc.collect()  # a finished task's unretrieved error is reported when the task is collected
    await asyncio.sleep(0)
    assert not [c for c in unretrieved if "never retrieved" in str(c.get("message"))], unretrieved
