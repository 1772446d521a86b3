"""The bot's own turn latency for an eval's call, beside the caller's: the figures its bot host
reports with the session's end (the timeline's `ended` event's `conversation.latencies`: the end of
the caller's speech as the bot's VAD heard it → the bot's first audio as its output transport played
it), the same the canary judge compares (docs/releases.md, "The conversation"). Where the two differ,
the difference is the network's and the caller's, not the bot's."""

from __future__ import annotations

from typing import Any

import httpx

from voicefleet.evals.outcome import Target
from voicefleet.loadtest.session_calls import timeline_once_ended

# The call's end → the bot host's `ended` report at the dispatcher: seconds, even on a loaded machine.
END_WAIT = 15.0


async def bot_latencies_ms(target: Target, http: httpx.AsyncClient, session_id: str | None,
                           wait: float = END_WAIT) -> list[float] | None:
    """The bot's turn latencies in ms, its answered turns in order; None when its session's end
    carried none within `wait` seconds (a bot host that reports no figures, a timeline not readable)."""
    if session_id is None:
        return None
    events = await timeline_once_ended(http, target.base_url, session_id, target.headers(), wait)
    ended = next((e for e in events or [] if e.get("event") == "ended"), None)
    return None if ended is None else _latencies(ended.get("conversation"))


def _latencies(conversation: Any) -> list[float] | None:
    raw = conversation.get("latencies") if isinstance(conversation, dict) else None
    if not isinstance(raw, list):
        return None
    return [round(float(v) * 1000, 1) for v in raw if isinstance(v, int | float) and not isinstance(v, bool)]
