"""A placed call's answering-machine verdict, told to the bot talking on it (botchannel/answered_by.py), its
channel here or at another replica. Best effort within `ANSWERED_BY_SECONDS`: the carrier waits for its
callback's answer, and the verdict is on the session's timeline whatever the bot heard. What came of it is
one word the timeline keeps beside the verdict:

    heard        the bot took it, with a handler of its own (bot/answered_by.py `on_answered_by`)
    no_handler   the bot took it and registered no handler (`answered_by()` still reads it)
    no_bot       no replica holds the session's bot (not connected yet, or gone)
    unreachable  the bot or its replica refused or did not answer in time (a bot or replica of an earlier
                 version among them), or the store could not be asked
"""

from __future__ import annotations

import logging
from typing import Literal

from botchannel.answered_by import ANSWERED_BY_SECONDS, METHOD_ANSWERED_BY, AnsweredBy
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.remote import StoreRemote, ask_bot
from dispatcher.errors import ApiError

log = logging.getLogger("dispatcher.phone")

BotHeard = Literal["heard", "no_handler", "no_bot", "unreachable"]


async def tell_bot(channels: BotChannels, remote: StoreRemote, session_id: str, verdict: AnsweredBy,
                   timeout: float = ANSWERED_BY_SECONDS) -> BotHeard:
    try:
        answer = await ask_bot(channels, remote, session_id, METHOD_ANSWERED_BY, verdict.as_params(), timeout)
    except (ApiError, TimeoutError) as exc:
        log.warning("phone call %s: its bot was not told who answered (%s): %s", session_id, verdict.answered_by,
                    exc)
        return "unreachable"
    if answer is None:
        return "no_bot"
    return "heard" if answer.get("heard") is True else "no_handler"
