"""The session's services' use so far, sent to the dispatcher during the call (botchannel/usage.py's
`usage.so_far`), so a bot killed before its `ended` report (SIGKILL, its machine lost) still has its
use counted up to its last report. Each report is the whole sum so far, never an increment: the
dispatcher keeps the newest, so a report sent twice or lost counts nothing twice.

The first goes a second after the first use (a short call's use is kept early), then one every
`every_seconds` the dispatcher answered, and only when the sums changed. An older dispatcher
answers 404: the host stops asking. A channel down or slow is tried again at the next turn. A WebRTC
call's transport so far (its ICE pair and bytes: bot/transport_meter.py) goes with each report, so
the relay's share of a killed bot's call is counted as far as its last report.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger

from botchannel.contract import RequestFailed
from botchannel.usage import METHOD_USAGE_SO_FAR

FIRST_SECONDS = 1.0
DEFAULT_EVERY_SECONDS = 15.0
MIN_EVERY_SECONDS, MAX_EVERY_SECONDS = 1.0, 600.0
REQUEST_TIMEOUT_SECONDS = 5.0
Request = Callable[[str, Mapping[str, Any], float], Awaitable[Mapping[str, Any]]]
Rows = Callable[[], list[dict[str, Any]]]
Transport = Callable[[], Awaitable[dict[str, Any] | None]]


async def report_usage(request: Request, rows: Rows, transport: Transport | None = None) -> None:
    """Until cancelled (at the session's end) or the dispatcher does not know the method."""
    every, sent = FIRST_SECONDS, None
    while True:
        await asyncio.sleep(every if sent is not None else FIRST_SECONDS)
        now: dict[str, Any] = {"usage": rows()}
        if transport is not None and (carried := await transport()) is not None:
            now["transport"] = carried
        if now == {"usage": []} or now == sent:
            continue
        try:
            answer = await request(METHOD_USAGE_SO_FAR, now, REQUEST_TIMEOUT_SECONDS)
        except RequestFailed as exc:
            if exc.status == 404:
                logger.info("the dispatcher keeps no usage during the call; it is reported at the end")
                return
            logger.debug(f"usage so far not sent ({exc.code}); tried again")
            continue
        sent = now
        every = _every(answer.get("every_seconds"))


def used_so_far() -> list[dict[str, Any]]:
    """The session watch's sums so far (bot/usage_meter.py); none while no watch is installed. Looked up,
    never imported: importing bot/watch.py loads Pipecat, seconds an idle bot must not spend here."""
    module = sys.modules.get("bot.watch")
    watch = module.current() if module is not None else None
    return watch.usage.report() if watch is not None else []


async def transport_so_far() -> dict[str, Any] | None:
    """A WebRTC call's transport so far (bot/transport_meter.py): its relayed bytes are counted up to
    here should the bot be killed before its end. None without a watch or a WebRTC call."""
    module = sys.modules.get("bot.watch")
    watch = module.current() if module is not None else None
    meter = watch.transport if watch is not None else None
    return await meter.report() if meter is not None else None


def _every(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_EVERY_SECONDS
    return min(MAX_EVERY_SECONDS, max(MIN_EVERY_SECONDS, float(value)))
