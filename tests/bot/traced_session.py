"""Runs one session of a bot file the way the host does (bot/user_session.py), assigned with the
`traceparent` given, and exports its spans: `python traced_session.py BOT_FILE TRACEPARENT`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot import tracing
from bot.lifecycle import SessionLifecycle
from bot.user_bot import load_user_bot
from bot.user_session import UserBotSession
from bot.watch import SessionWatch
from botchannel.contract import Assignment


async def main(bot_file: str, traceparent: str) -> None:
    user_bot = load_user_bot(Path(bot_file))
    tracing.configure()
    tracing.SESSION.assigned(Assignment("0" * 24, 60, traceparent=traceparent))
    lifecycle, watch = SessionLifecycle(), SessionWatch()
    watch.install()
    session = UserBotSession(user_bot, lifecycle, watch)
    session.connected = True
    session.start(object())
    reason = await asyncio.wait_for(lifecycle.wait(), 60)
    tracing.SESSION.reported("ended", {"reason": reason.value, "exit_code": reason.exit_code})
    tracing.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
