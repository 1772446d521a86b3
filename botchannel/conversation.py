"""A session's conversation in figures, as the bot host reports it with `ended` (bot/conversation.py)
and the dispatcher keeps it (the `ended` event of the session's timeline, the release judge):

    {"caller_turns": 4, "unanswered": 0, "bot_turns": 5, "cut_off": 1,
     "latencies": [0.82, 0.91, 1.4, 0.77], "left_in_first_turn": false,
     "behind": [[1795000000.0, 0.04, 0.03], [1795000012.0, 0.92, 0.71]]}

`latencies`: seconds from the end of the caller's speech to the bot's first audio, one per answered
caller turn (the first `MAX_LATENCIES`); `left_in_first_turn`: the caller hung up (the session
ended for one of `CALLER_ENDS`) before any of their turns was answered by a bot turn played to its
end; `behind` (optional: older bot hosts send none): the bot host's event loop's stalls, each as
[a wall-clock second, the seconds its loop woke late in it, the seconds its thread waited for a CPU
in it], the first `MAX_STALLS` (bot/loop_lag.py), which an eval reads to tell a host short of CPU from
a slow bot; `blocked` (optional, as `behind`): the times the bot's own code blocked that loop, each as
[the wall-clock second the block began, the seconds it lasted, the seconds of CPU the loop's thread ran
in it], at most `MAX_BLOCKS`: the newest and the longest (bot/own_block.py), which an eval reads as the
bot's failure. Bounded, whatever the bot sends: a figure set that is not this shape is dropped whole
(`conversation_figures` answers None), never the report it came with.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

MAX_LATENCIES = 100
MAX_COUNT = 1_000_000
MAX_LATENCY_SECONDS = 3_600.0
MAX_STALLS = 600  # a stall per second: ten minutes of a starved call
MAX_BLOCKS = 100  # the bot's own blocks of its loop: one is enough to fail a call
# The bot host's end reasons (bot/lifecycle.py) for a caller who hung up, or a pipeline the bot ended.
# Not `bot_closed`: the bot's own close before it answered anyone is its failure (the release judge's
# dispatcher/sessions/release_outcome.py), not a caller who left.
CALLER_ENDS = ("peer_disconnected", "participant_left", "pipeline_finished")
_COUNTS = ("caller_turns", "unanswered", "bot_turns", "cut_off")


def conversation_figures(raw: object) -> dict[str, Any] | None:
    """The figures as this contract bounds them, or None for anything else."""
    if not isinstance(raw, dict):
        return None
    counts: dict[str, int] = {}
    for name in _COUNTS:
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            return None
        counts[name] = value
    latencies, left = raw.get("latencies"), raw.get("left_in_first_turn")
    if not isinstance(latencies, list) or len(latencies) > MAX_LATENCIES or not isinstance(left, bool):
        return None
    if not all(_finite(v) and 0.0 <= v <= MAX_LATENCY_SECONDS for v in latencies):
        return None
    if counts["unanswered"] > counts["caller_turns"] or counts["cut_off"] > counts["bot_turns"]:
        return None
    figures = {**counts, "latencies": [round(float(v), 3) for v in latencies], "left_in_first_turn": left}
    if "behind" in raw:
        if (behind := _stalls(raw["behind"])) is None:
            return None
        figures["behind"] = behind
    if "blocked" in raw:
        if (blocked := _stalls(raw["blocked"], MAX_BLOCKS)) is None:
            return None
        figures["blocked"] = blocked
    return figures


def _stalls(raw: object, most: int = MAX_STALLS) -> list[list[float]] | None:
    """`[wall-clock second, seconds, seconds]` triples, at most `most` of them; None for anything else."""
    if not isinstance(raw, list) or len(raw) > most:
        return None
    stalls = []
    for stall in raw:
        if not isinstance(stall, list) or len(stall) != 3 or not all(_finite(v) for v in stall):
            return None
        began, late, waited = (float(v) for v in stall)
        if began < 0.0 or not all(0.0 <= v <= MAX_LATENCY_SECONDS for v in (late, waited)):
            return None
        stalls.append([round(began, 3), round(late, 3), round(waited, 3)])
    return stalls


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
