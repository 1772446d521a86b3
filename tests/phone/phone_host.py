"""A stand-in bot host for phone calls: dial the channel, take one call, run the user's `bot()`.

It does what `python -m bot` does for a WebSocket session (hello, `assign`, `media.attach`, the
runner arguments Pipecat's runner would build, reports, exit), with nothing else, so the phone
tests exercise the dispatcher's relay and `bot/carrier_socket.py` with a real user bot in a real
process. Usage (as LOCAL_BOT_COMMAND): `python tests/phone/phone_host.py [--session-id ID ...]`;
PHONE_USER_BOT names the user's file (default: tests/phone/echo_bot.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.carrier_socket import CarrierSocket, dial_media  # noqa: E402
from bot.channel_client import BotChannel
from bot.identity import MachineIdentity, identity_source  # noqa: E402
from bot.runner_args import websocket_arguments  # noqa: E402
from botchannel.contract import METHOD_ASSIGN, METHOD_MEDIA_ATTACH, Assignment, Hello, RequestFailed  # noqa: E402


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def load_user_bot() -> Any:
    path = Path(os.environ.get("PHONE_USER_BOT", Path(__file__).with_name("echo_bot.py")))
    spec = importlib.util.spec_from_file_location("user_bot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--session-id")
    parser.add_argument("--transport")
    parser.add_argument("--max-duration")
    args = parser.parse_args()
    args.session_id = args.session_id or os.environ.get("VOICEFLEET_SESSION_ID")  # a cold bot's, from its launcher
    user = load_user_bot()  # warm: Pipecat and the user's module are imported before any call
    url, token = os.environ["BOT_CHANNEL_URL"], os.environ["BOT_CHANNEL_TOKEN"]
    machine_id = os.environ.get("BOT_MACHINE_ID") or f"phone-host-{os.getpid()}"
    assigned: asyncio.Future[Assignment] = asyncio.get_running_loop().create_future()
    media: asyncio.Future[CarrierSocket] = asyncio.get_running_loop().create_future()
    if args.session_id:
        body = json.loads(os.environ.get("VOICEFLEET_BODY") or "{}")
        assigned.set_result(Assignment(args.session_id, 1800, "websocket", body))

    async def assign(params: Any) -> dict[str, Any]:
        if assigned.done():
            raise RequestFailed(409, "already_assigned", "one session, ever")
        assignment = Assignment.from_params(params)
        assigned.set_result(assignment)
        return {"session_id": assignment.session_id, "machine_id": machine_id}

    async def attach(params: Any) -> dict[str, Any]:
        if not assigned.done() or media.done():
            raise RequestFailed(409, "not_assigned", "no call to attach")
        media.set_result(await dial_media(url, params))
        return {}

    channel = BotChannel(
        url, token,
        Hello(machine_id=machine_id, image=os.environ.get("BOT_IMAGE_DIGEST", "dev"),
              capabilities=("websocket", "webrtc"), session_id=args.session_id),
        {METHOD_ASSIGN: assign, METHOD_MEDIA_ATTACH: attach},
        MachineIdentity(identity_source(os.environ), url, os.environ),  # a local bot's launch proof
    )
    await channel.connect()
    serving = asyncio.create_task(channel.serve())
    emit("ready", pid=os.getpid())
    done, _ = await asyncio.wait({serving, media}, return_when=asyncio.FIRST_COMPLETED)
    if media not in done:
        emit("ended", reason="channel_lost")
        return 3
    assignment = assigned.result()
    await channel.report("ready", assignment.session_id)
    socket = media.result()
    generic = "websocket" if socket.carrier == "generic" else None
    await user.bot(
        websocket_arguments(
            socket, body=assignment.body, session_id=assignment.session_id, idle_timeout=300, transport_type=generic
        )
    )
    await channel.report("ended", assignment.session_id, reason="pipeline_finished")
    emit("ended", reason="pipeline_finished")
    await channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
