"""voicefleet's own bot host (`python -m bot`), dialling another replica than the one that launched
it, as a load balancer may send it: `PHONE_BOT_CHANNEL_URL` replaces the launcher's own address.

For the media secret tests it also writes the `media.attach` it is handed to
`PHONE_MEDIA_DIR/<session id>.json`, and when `<session id>.hold` exists there it dials its media
socket only once `<session id>.release` does (a knob the test holds and releases). Usage, as
LOCAL_BOT_COMMAND: `python tests/replicas/phone_bot_elsewhere.py` (the launcher appends its flags).
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bot.carrier_socket as carrier_socket  # noqa: E402

dial_media = carrier_socket.dial_media


async def recorded_dial(channel_url: str, params: Mapping[str, Any]) -> Any:
    folder = Path(os.environ["PHONE_MEDIA_DIR"])
    session_id = str(params.get("path", "")).rsplit("/", 1)[-1]
    written = folder / f"{session_id}.json.part"
    written.write_text(json.dumps(dict(params)))
    written.rename(folder / f"{session_id}.json")  # whole, or not there
    if (folder / f"{session_id}.hold").exists():
        while not (folder / f"{session_id}.release").exists():
            await asyncio.sleep(0.02)
    return await dial_media(channel_url, params)


if __name__ == "__main__":
    os.environ["BOT_CHANNEL_URL"] = os.environ["PHONE_BOT_CHANNEL_URL"]
    carrier_socket.dial_media = recorded_dial  # read at the call (bot/websocket_mode.py imports it then)
    sys.argv = ["bot", *sys.argv[1:]]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
