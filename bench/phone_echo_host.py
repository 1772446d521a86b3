"""A bot host that only echoes a call's frames, for measuring the dispatcher's relay alone.

As LOCAL_BOT_COMMAND: dials the channel like a real bot (hello, `assign`, `media.attach`, the
media socket through `bot/carrier_socket.py`), then sends every frame straight back, verbatim.
No Pipecat: fifty of them fit on a small host, and what a benchmark times is the relay, not a
pipeline. `--serve PORT` instead serves the same echo directly (no dispatcher), the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.carrier_socket import CarrierSocket, dial_media  # noqa: E402
from bot.channel_client import BotChannel
from bot.identity import MachineIdentity, identity_source  # noqa: E402
from botchannel.contract import METHOD_ASSIGN, METHOD_MEDIA_ATTACH, Assignment, Hello, RequestFailed  # noqa: E402


async def echo(socket: CarrierSocket) -> None:
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await (socket.send_text(message["text"]) if "text" in message else socket.send_bytes(message["bytes"]))


async def host(session_id: str | None) -> int:
    url, token = os.environ["BOT_CHANNEL_URL"], os.environ["BOT_CHANNEL_TOKEN"]
    machine_id = os.environ.get("BOT_MACHINE_ID") or f"echo-{os.getpid()}"
    assigned: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    media: asyncio.Future[CarrierSocket] = asyncio.get_running_loop().create_future()
    if session_id:
        assigned.set_result(session_id)

    async def assign(params: Any) -> dict[str, Any]:
        if assigned.done():
            raise RequestFailed(409, "already_assigned", "one session, ever")
        assigned.set_result(Assignment.from_params(params).session_id)
        return {"session_id": assigned.result(), "machine_id": machine_id}

    async def attach(params: Any) -> dict[str, Any]:
        media.set_result(await dial_media(url, params))
        return {}

    hello = Hello(machine_id=machine_id, image=os.environ.get("BOT_IMAGE_DIGEST", "dev"),
                  capabilities=("websocket", "webrtc"), session_id=session_id)
    channel = BotChannel(url, token, hello, {METHOD_ASSIGN: assign, METHOD_MEDIA_ATTACH: attach},
                         MachineIdentity(identity_source(os.environ), url, os.environ))  # a local bot's launch proof
    await channel.connect()
    serving = asyncio.create_task(channel.serve())
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)
    await asyncio.wait({serving, media}, return_when=asyncio.FIRST_COMPLETED)
    if media.done():
        await echo(media.result())
    await channel.close()
    return 0


async def serve(port: int) -> None:
    from websockets.asyncio.server import serve as ws_serve

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with ws_serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        print(json.dumps({"event": "serving", "port": port}), flush=True)
        await asyncio.Future()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--session-id")
    parser.add_argument("--transport")
    parser.add_argument("--max-duration")
    parser.add_argument("--serve", type=int)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return 0
    session_id = args.session_id or os.environ.get("VOICEFLEET_SESSION_ID")  # a cold bot's, from its launcher
    return asyncio.run(host(session_id))


if __name__ == "__main__":
    sys.exit(main())
