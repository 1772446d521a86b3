"""A phone user bot that imports no Pipecat pipeline: it says which session it got (a report in
PHONE_TEST_REPORTS) and sends each of the carrier's `media` messages back as they came, so the
caller hears their own audio. Run by tests/phone/phone_host.py (PHONE_USER_BOT names this file)."""

import json
import os
from pathlib import Path


async def bot(runner_args):
    socket = runner_args.websocket
    Path(os.environ["PHONE_TEST_REPORTS"], f"{runner_args.session_id}.json").write_text(
        json.dumps({"session_id": runner_args.session_id, "pid": os.getpid()}))
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None and json.loads(text).get("event") == "media":
            await socket.send_text(text)
