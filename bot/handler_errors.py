"""An exception in one of the bot's event handlers (`on_client_connected`, `on_first_participant_joined`,
…) as the session's error, with the file and line it was raised at.

Pipecat runs each handler in a task of its own and catches what it raises: it logs
`<owner>: uncaught exception in event handler '<event>' (<file>:<line>): <error>` and the session goes
on, often deaf or mute (a greeting that was never queued, a Daily-only `participant["id"]` under
SmallWebRTC). The host reads that log line, within the `except` that logged it, so the exception's
type and the way out (bot/error_advice.py) join the report.
"""

from __future__ import annotations

import re

from bot.error_advice import way_out
from bot.pipeline_errors import bounded

EVENT_HANDLER_LOGGER = "pipecat.utils.base_object"
_HANDLER_CRASHED = re.compile(
    r"(?P<owner>.+?): uncaught exception in event handler '(?P<event>[^']+)' \((?P<where>.*?)\): (?P<error>.*)",
    re.DOTALL,
)


def describe_handler_crash(message: str, exc: BaseException | None) -> str | None:
    """`/app/bot.py:129: event handler 'on_client_connected' of SmallWebRTCTransport#0 raised TypeError:
    …` from Pipecat's log line and the exception being handled (None: the line alone); None for any
    other line of that logger."""
    crashed = _HANDLER_CRASHED.fullmatch(message)
    if crashed is None:
        return None
    error = f"{type(exc).__name__}: {crashed['error']}" if exc is not None else crashed["error"]
    advice = way_out(exc) if exc is not None else None
    if advice is None and _daily_participant_elsewhere(crashed["owner"], exc):
        advice = DAILY_PARTICIPANT
    detail = f"{crashed['where']}: event handler '{crashed['event']}' of {crashed['owner']} raised {error}"
    return bounded(f"{detail} ({advice})" if advice else detail)


# pipecat-examples' Daily bots index the participant their handlers are given (`participant["id"]`);
# SmallWebRTC's handlers are given its connection object instead.
DAILY_PARTICIPANT = (
    "a Daily participant is a dict; SmallWebRTC's handlers are given its connection: run this "
    "only under Daily (isinstance(transport, DailyTransport)), or start Daily sessions"
)


def _daily_participant_elsewhere(owner: str, exc: BaseException | None) -> bool:
    return isinstance(exc, TypeError) and "not subscriptable" in str(exc) and owner.startswith("SmallWebRTC")
