"""A pipeline error as the session's timeline shows it: which processor, whether it can go on, what.

Pipecat's worker raises `on_pipeline_error` with the `ErrorFrame`; its processor's `is_usable`
tells an error that leaves the processor unable to do its job (a speech service whose key was
refused) from one it recovers from. Pipecat masks credentials in the frame's `error` text; the
channel bounds it (512 characters).

A service's background task that raises is no pipeline error to Pipecat: its task manager only logs
`<task> unexpected exception (<file>:<line>): <error>` (Gemini Live's connection task, when the
host cannot be resolved), and the bot goes silent with a session that looks healthy. The host reads
that log line and reports it as an error of the session too.
"""

from __future__ import annotations

import re

MAX_DETAIL_CHARS = 480  # within the channel's 512, with room for the processor's name
# A transport whose set-up failed: no media can flow, so the session ends now (bot/watch.py).
_SETUP_FAILED = "Error setting up processor"
# A Daily transport built with room_url None: daily-python's words, and where the room is.
_NO_ROOM = "'None' is not an instance of 'str'"
NO_ROOM_ADVICE = ("the Daily transport was given no room: the session's room is in runner_args.room_url and the "
                  "bot's token in runner_args.token (the request body holds only what the client sent)")


TASK_MANAGER_LOGGER = "pipecat.utils.asyncio.task_manager"
_TASK_CRASHED = re.compile(r"(?P<task>\S+) unexpected exception \([^)]*\): (?P<error>.*)", re.DOTALL)


def describe_error(frame: object) -> tuple[str, str]:
    """(reason: `unusable` or `error`, detail: `<processor>: <error>`)."""
    processor = getattr(frame, "processor", None)
    unusable = processor is not None and getattr(processor, "is_usable", True) is False
    text = str(getattr(frame, "error", "") or type(frame).__name__)
    name = getattr(processor, "name", None) or (type(processor).__name__ if processor is not None else "pipeline")
    if name.startswith("Daily") and _NO_ROOM in text:
        text = f"{NO_ROOM_ADVICE} ({text})"
    return ("unusable" if unusable else "error"), bounded(f"{name}: {text}")


def transport_failed(detail: str) -> bool:
    """A transport's set-up failed (`DailyInputTransport#0: Error setting up processor: …`): the session
    has no media, and no one will join it."""
    name = detail.split(":", 1)[0]
    return "Transport" in name and _SETUP_FAILED in detail


def describe_task_crash(message: str) -> str | None:
    """`GeminiLiveLLMService#0::_connection_task_handler: [Errno -2] Name or service not known` from
    the task manager's log line; None for any other line of that logger."""
    crashed = _TASK_CRASHED.fullmatch(message)
    return bounded(f"{crashed['task']}: {crashed['error']}") if crashed else None


def bounded(detail: str) -> str:
    """`detail` within the channel's bound, an ellipsis marking a cut."""
    return detail if len(detail) <= MAX_DETAIL_CHARS else detail[: MAX_DETAIL_CHARS - 1] + "…"
