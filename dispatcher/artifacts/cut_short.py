"""Why a bot's end was not handed over, said from its session's timeline: a session stopped whose
machine ended while its bot was still writing its end (a stop's grace that ran out) is told as
that, not as a bot "killed or lost"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

KILLED_OR_LOST = "killed or lost"
STOPPED = ("stopped, and its machine ended while the bot was still handing over its end: the stop's grace ran out "
           "(LOCAL_STOP_GRACE_SECONDS locally, the provider's stop timeout in the cloud)")


def cut_short_by_stop(events: Iterable[Mapping[str, Any]]) -> bool:
    """No end from the bot, a stop asked, and its machine then ended as a stop ends it (`ended`: a
    machine that `failed` crashed, whatever was asked of it)."""
    stopped = machine_over = None
    for event in events:
        name, at = event.get("event"), event.get("at")
        if name == "ended":
            return False
        if name == "stop_requested" and stopped is None and isinstance(at, int | float):
            stopped = at
        if name == "machine_ended" and machine_over is None and isinstance(at, int | float):
            if event.get("state") != "ended":
                return False
            machine_over = at
    return stopped is not None and machine_over is not None and machine_over >= stopped


def told(text: str, stopped: bool) -> str:
    """`text` with what really cut the bot short, where the timeline knows it."""
    return text.replace(KILLED_OR_LOST, STOPPED) if stopped else text
