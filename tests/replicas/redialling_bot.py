"""A cloud bot for the replica tests: voicefleet's own channel code (bot/channel_session.py, the
same as `python -m bot` runs: the hello, the one assignment, the re-dial with back-off when the
channel drops mid-session) with the WebRTC media left out. An offer is answered with the session
and the process id, so a test sees which bot answered; SIGTERM ends the session with its report.

Run as `python -m tests.replicas.redialling_bot` by tests/replicas/fly_bots.py, in the
environment the dispatcher gave the machine (cold: its session; reserve: its bot id), as Fly runs
the bot image. With `STANDIN_HEARD=1` in its environment, an answered offer is followed by the
reports a real bot sends once its caller joins and hears it (`joined`, `first_audio`): what a release's
smoke session waits for. With `STANDIN_FAILS=1`, its session fails as one whose `bot()` raises: it
reports the error and ends with `bot_failed` (exit code 1).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from bot.channel_session import ChannelSession
from bot.config import load_config
from bot.events import EventWriter
from bot.lifecycle import SessionLifecycle
from botchannel.contract import METHOD_ICE, METHOD_OFFER


async def serve() -> int:
    config = load_config([], os.environ)
    if config.channel is None:
        raise SystemExit("BOT_CHANNEL_URL is not set")
    events = EventWriter(config.session_id)
    lifecycle = SessionLifecycle()
    channel: ChannelSession
    heard = os.environ.get("STANDIN_HEARD") == "1"
    reports: set[asyncio.Task[None]] = set()

    async def caller_heard() -> None:
        await channel.report("joined")
        await channel.report("first_audio")

    def after_the_answer() -> None:
        task = asyncio.ensure_future(caller_heard())
        reports.add(task)
        task.add_done_callback(reports.discard)

    async def offer(params: dict[str, Any]) -> dict[str, Any]:
        assert channel.assignment is not None  # the channel refuses signalling before it
        if heard:  # after the answer: the caller joins, then hears the bot
            asyncio.get_running_loop().call_later(0.1, after_the_answer)
        return {"sdp": "answer-to:" + str(params.get("sdp")), "type": "answer", "pc_id": "redial-pc",
                "bot": f"{channel.assignment.session_id}/{os.getpid()}"}

    async def ice(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok"}

    with lifecycle.signals_end_session():
        # The transport its launch values pick, as the bot's own modes announce it (a reserve bot
        # launched for Daily cannot take a WebRTC session, and says so in its hello).
        channel = ChannelSession(config, config.channel, events, lifecycle, capabilities=(config.transport,),
                                 signalling={METHOD_OFFER: offer, METHOD_ICE: ice})
        await channel.open()
        if await channel.wait_assigned() is None:
            await channel.close()
            return lifecycle.reason.exit_code
        if os.environ.get("STANDIN_FAILS") == "1":  # the release's bot() raises as its session begins
            await channel.report("error", detail="RuntimeError: bot() raised")
            await channel.report("ended", reason="bot_failed", exit_code=1)
            await channel.close()
            return 1
        events.emit("ready", pid=os.getpid())
        await channel.report("ready")
        await lifecycle.wait()
        reason = lifecycle.reason
        await channel.report("ended", reason=reason.value, exit_code=reason.exit_code)
        await channel.close()
    return reason.exit_code


if __name__ == "__main__":
    sys.exit(asyncio.run(serve()))
