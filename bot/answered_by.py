"""`on_answered_by`: your bot hears who answered the call it placed, when the carrier's detection decides.

    from bot.answered_by import on_answered_by

    on_answered_by(lambda verdict: task.queue_frame(EndFrame()) if not verdict.human else None)

With asynchronous answering-machine detection (Twilio's `AsyncAmd`, Telnyx's TeXML AMD) the bot already
talks when the verdict comes, seconds after the pickup. The dispatcher tells this bot over its channel
(botchannel/answered_by.py `call.answered_by`) whenever the call stays with it: `human` or `unknown` (a
machine's call is hung up, or handed to a fresh bot that finds `answered_by` in its body). The handler
gets an `AnsweredBy` (`answered_by`, `carrier`, `.human`, `.machine`) and may be async; it runs on its
own, so a slow one holds nothing up. A verdict that came before the handler was registered is handed to
it at registration, so registering it inside `bot(runner_args)` misses nothing. `answered_by()` is the
verdict so far (None: none yet).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger

from botchannel.answered_by import AnsweredBy, VerdictInvalid, parse_verdict
from botchannel.contract import RequestFailed

VerdictHandler = Callable[[AnsweredBy], "Awaitable[Any] | Any"]
_handler: list[VerdictHandler] = []  # one bot, one session: the last registered
_verdict: list[AnsweredBy] = []  # the one the dispatcher told, once it did
_running: set[asyncio.Task[None]] = set()


def on_answered_by(handler: VerdictHandler) -> VerdictHandler:
    """Registers what this bot does with the carrier's verdict; usable as a decorator. A later one replaces
    an earlier one; a verdict already heard is handed to it now."""
    _handler[:] = [handler]
    if _verdict:
        _run(handler, _verdict[0])
    return handler


def answered_by() -> AnsweredBy | None:
    """The carrier's verdict on this bot's call so far, None until the dispatcher told one."""
    return _verdict[0] if _verdict else None


async def heard_verdict(params: Mapping[str, Any]) -> dict[str, Any]:
    """The channel's `call.answered_by` handler: kept, handed to the bot's handler, and answered at once
    (`heard`: a handler took it)."""
    try:
        verdict = parse_verdict(params)
    except VerdictInvalid as exc:
        raise RequestFailed(400, "invalid_request", str(exc)) from None
    if _verdict == [verdict]:  # told again (the dispatcher's callback and the bot's attach raced): run once
        return {"heard": bool(_handler)}
    _verdict[:] = [verdict]
    logger.info(f"the carrier says the call was answered by: {verdict.answered_by}")
    if not _handler:
        return {"heard": False}
    _run(_handler[0], verdict)
    return {"heard": True}


def _run(handler: VerdictHandler, verdict: AnsweredBy) -> None:
    task = asyncio.get_running_loop().create_task(_call(handler, verdict), name="on-answered-by")
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _call(handler: VerdictHandler, verdict: AnsweredBy) -> None:
    try:
        result = handler(verdict)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # the bot's own code: logged, the call goes on
        logger.warning(f"the on_answered_by handler failed: {exc!r}")
