"""A warm transfer's steps at the bot host (botchannel/transfer.py `call.warm_transfer`): the dispatcher
tells the bot to brief the person (who hears it now, the caller on hold) or that the person did not
answer; the host names the line (bot/transfer.py `warm_line`: the request's summary, the bot's
`on_warm_transfer` handler, else a default), says it (bot/warm_speech.py) and answers `spoken` once the
bot said it through, or `false` after the step's time. `stop` (the person left during the briefing): the
line given up and the bot interrupted, `stopped` once it is quiet, before the caller hears it again.
`line` (a Twilio call's warm transfer): the briefing's text alone, said by nobody here (Twilio reads it);
`ringing` (the same): the caller, still with the bot, told that the person is being called.
Pipecat is imported only once a session runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.transfer import WarmStep, default_line, warm_line
from botchannel.contract import RequestFailed
from botchannel.transfer import BRIEF_SECONDS, FAILED_SECONDS, STOP_SECONDS, SUMMARY_CHARS

if TYPE_CHECKING:
    from bot.warm_speech import Queue, SpeechWatch

SPEAK_MARGIN_SECONDS = 1.0  # the answer goes back within the dispatcher's wait for it
HANDLER_SECONDS = 3.0  # the bot's own `on_warm_transfer` handler, to name its line


def warm_handler(speech: Callable[[], tuple[SpeechWatch, Queue] | None]
                 ) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
    """The channel's `call.warm_transfer` handler; `speech()` is the session's watch and queue, once running."""
    async def answer(params: Mapping[str, Any]) -> dict[str, Any]:
        event = params.get("event")
        if event not in ("brief", "failed", "stop", "line", "ringing"):
            raise RequestFailed(400, "invalid_request", "event must be \"brief\", \"failed\", \"stop\", \"line\" "
                                "or \"ringing\"")
        if event == "line":
            return {"line": (await _named_line(WarmStep("brief", _text(params.get("to"))), None))[:SUMMARY_CHARS]}
        running = speech()
        if event == "stop":
            quiet = running is None or await running[0].stop(running[1], STOP_SECONDS - SPEAK_MARGIN_SECONDS)
            return {"stopped": quiet}
        step = WarmStep(str(event), _text(params.get("to")), _text(params.get("reason")))
        if running is None:
            return {"spoken": False}
        stops = running[0].stops  # a `stop` while the handler names the line: the line is not said
        seconds = (BRIEF_SECONDS if event == "brief" else FAILED_SECONDS) - SPEAK_MARGIN_SECONDS
        line = await _named_line(step, _text(params.get("summary")))
        watch, queue = running
        return {"spoken": await watch.say(queue, line, seconds, stops)}

    return answer


async def _named_line(step: WarmStep, summary: str | None) -> str:
    try:
        async with asyncio.timeout(HANDLER_SECONDS):
            return await warm_line(step, summary)
    except Exception as exc:  # the bot's handler failed or hung: logged, and the default line said instead
        logger.warning(f"warm transfer: the on_warm_transfer handler failed: {exc!r}")
        return default_line(step.event)


def _text(value: object) -> str | None:
    return value[:SUMMARY_CHARS] if isinstance(value, str) and value else None
