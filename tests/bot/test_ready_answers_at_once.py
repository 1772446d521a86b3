"""`ready` means an offer is answered at once: answering imports nothing that start-up did not.

The bot's side runs in a fresh interpreter that does what `python -m bot --transport webrtc` does
before announcing `ready` (the imports, the parrot's bot file, `prepare_to_answer()`), then
answers a real aiortc offer the way `serve` does (a peer connection, then the user's `bot()`
building its transport, pipeline and worker) and reports which modules that imported. The offer
comes from another interpreter, so the client's own imports cannot hide the bot's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.bot.conftest import REPO, bot_env

OFFER = """
import asyncio, json
from aiortc import RTCPeerConnection

async def main():
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    print(json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}))
    await pc.close()

asyncio.run(main())
"""

ANSWER = """
import asyncio, json, sys
from bot.lazy_imports import defer_unused_imports
defer_unused_imports()
from bot import webrtc_mode
from bot.app import warm_up
from bot.config import load_config
from bot.lifecycle import SessionLifecycle
from bot.runner_args import webrtc_arguments
from bot.shutdown import run_bounded
from bot.signalling import SignallingServer
from bot.user_session import UserBotSession
from bot.watch import SessionWatch

async def main(offer):
    user_bot = warm_up(load_config([], {}))  # the parrot, imported, and the VAD loaded
    webrtc_mode.prepare_to_answer()  # the last step before `ready`
    watch = SessionWatch()
    watch.install()
    session = UserBotSession(user_bot, SessionLifecycle(), watch)

    async def on_connection(connection):  # as webrtc_mode.serve's
        session.start(webrtc_arguments(connection, body={}, session_id="ready-test", idle_timeout=60))

    server = SignallingServer(session_id="ready-test", on_connection=on_connection)
    before = set(sys.modules)
    answer = await server.offer(offer)
    while not watch.workers:  # the bot built its transport, pipeline and worker
        await asyncio.sleep(0.01)
    imported = sorted(set(sys.modules) - before)
    await session.stop()
    await server.close()
    return {"type": answer["type"], "has_audio": "m=audio" in answer["sdp"], "imported": imported}

print(json.dumps(run_bounded(main(json.loads(sys.stdin.read())))))  # as the bot runs its loop
"""


def run_python(program: str, stdin: str = "") -> Any:
    result = subprocess.run(
        [sys.executable, "-c", program],
        input=stdin,
        cwd=REPO,
        env=bot_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_a_bot_that_is_ready_answers_an_offer_without_importing_anything() -> None:
    offer = run_python(OFFER)
    report = run_python(ANSWER, json.dumps(offer))
    assert report["type"] == "answer" and report["has_audio"]
    assert report["imported"] == []
