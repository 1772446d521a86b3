"""The bot's own turn latency for an eval's call, beside the caller's: the figures its bot host
reports with the session's end (the timeline's `ended` event's `conversation.latencies`: the end of
the caller's speech as the bot's VAD heard it → the bot's first audio as its output transport played
it), the same the canary judge compares (docs/releases.md, "The conversation"). Where the two differ,
the difference is the network's and the caller's, not the bot's. With them, the times the bot host's
loop fell behind real time (`conversation.behind`), which bot_behind.py lays on the call's turns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import httpx

from voicefleet.evals.outcome import Block, Stall, Target
from voicefleet.loadtest.session_calls import timeline_once_ended

T = TypeVar("T")

# The call's end → the bot host's `ended` report at the dispatcher: seconds, even on a loaded machine.
END_WAIT = 15.0


class BotFigures(NamedTuple):
    latencies_ms: list[float] | None = None
    stalls: list[Stall] | None = None
    blocks: list[Block] | None = None


async def bot_figures(target: Target, http: httpx.AsyncClient, session_id: str | None,
                      wait: float = END_WAIT) -> BotFigures:
    """The bot's turn latencies in ms, its answered turns in order, its host's stalls (a wall-clock
    second, how late its loop woke in it and how long it waited for a CPU: bot/loop_lag.py) and the
    blocks its own code made of that loop (bot/own_block.py); each None when its session's end carried
    none within `wait` seconds (a bot host that reports no figures, or an older one, a timeline not
    readable)."""
    if session_id is None:
        return BotFigures()
    events = await timeline_once_ended(http, target.base_url, session_id, target.headers(), wait)
    ended = next((e for e in events or [] if e.get("event") == "ended"), None)
    if ended is None:
        return BotFigures()
    conversation = ended.get("conversation")
    return BotFigures(_latencies(conversation), _triples(conversation, "behind", Stall),
                      _triples(conversation, "blocked", Block))


def blocks_of(ended: dict[str, Any] | None) -> list[Block]:
    """The blocks of its loop the bot's own code made, from the session's `ended` event."""
    return _triples((ended or {}).get("conversation"), "blocked", Block) or []


def _triples(conversation: Any, name: str, kind: Callable[..., T]) -> list[T] | None:
    raw = conversation.get(name) if isinstance(conversation, dict) else None
    if not isinstance(raw, list):
        return None
    return [kind(*(float(v) for v in s)) for s in raw
            if isinstance(s, list) and len(s) == 3 and all(isinstance(v, int | float) for v in s)]


def _latencies(conversation: Any) -> list[float] | None:
    raw = conversation.get("latencies") if isinstance(conversation, dict) else None
    if not isinstance(raw, list):
        return None
    return [round(float(v) * 1000, 1) for v in raw if isinstance(v, int | float) and not isinstance(v, bool)]
