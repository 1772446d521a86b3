"""A cold bot's first moments on the channel, for tests of what a launched machine is handed.

It dials with the credential its launch values hold (none: an agent-sandbox pool's pod, whose identity
alone admits it), says hello for its session and takes the `assign` the dispatcher sends (the session's
values, which the launch values no longer carry).
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from botchannel.contract import CHANNEL_PATH, Hello, Reply, Request, Welcome, encode, parse_frame

WAIT = 30.0


def channel_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}{CHANNEL_PATH}"


async def dial(
    url: str, token: str, session_id: str, machine_id: str = "cold-1", identity: str | None = None
) -> ClientConnection:
    """`identity`: the machine's identity token, where its provider issues one (the harness's); `token` ""
    sends no credential at all."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await connect(url, additional_headers=headers, proxy=None, open_timeout=WAIT)
    await ws.send(encode(Hello(machine_id=machine_id, image="dev", capabilities=("webrtc", "daily"),
                               session_id=session_id, identity=identity)))
    assert isinstance(parse_frame(await asyncio.wait_for(ws.recv(), WAIT)), Welcome)
    return ws


async def next_assign(ws: ClientConnection, timeout: float = WAIT) -> Request:
    while True:
        frame = parse_frame(await asyncio.wait_for(ws.recv(), timeout))
        if isinstance(frame, Request) and frame.method == "assign":
            return frame


async def take_session_values(
    url: str, token: str, session_id: str, machine_id: str = "cold-1", identity: str | None = None
) -> dict[str, Any]:
    """The session's values as its cold bot receives them (the assign is answered, as a bot does)."""
    ws = await dial(url, token, session_id, machine_id, identity)
    try:
        assign = await next_assign(ws)
        await ws.send(encode(Reply(assign.id, result={"session_id": session_id, "machine_id": machine_id})))
        return dict(assign.params)
    finally:
        await ws.close()
