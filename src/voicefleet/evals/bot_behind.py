"""A failed call whose bot's machine held it back: inconclusive, not failed.

The bot host reports, second by second, how late its event loop woke and how long its thread waited
for a CPU (bot/loop_lag.py). The lesser of the two is how far its machine held it behind real time:
a host starved of CPU runs its loop late, waiting for a CPU all the while (its answers play
stretched, the caller is heard late); a bot slow by design keeps its loop on time, and one that
blocks its own loop (`time.sleep`) runs it late without waiting for a CPU. (A loop that keeps up on a
loaded host waits for a CPU often, a few ms at a time, yet wakes on time: the wait alone says little.)

Each of the call's turns owns the seconds from the caller's start of it to the start of the next (the
greeting, those before the first turn), laid on the caller's wall clock. A failed turn is
inconclusive when its bot fell behind more than `bot_behind_limit` seconds in it and, for an answer
that began too late, at least as much as it was late by: without the wait it may have been in time,
while a bot slow by design is late by more than its machine held it back, and fails. A call is
inconclusive when every one of its failures is.
"""

from __future__ import annotations

import math

from voicefleet.evals.checks import late_by_ms
from voicefleet.evals.outcome import CallResult

# Seconds a turn's bot may fall behind before a failure in it proves nothing: a starved answer falls
# seconds behind; a bot on a host at a load of 13 on 2 cores that keeps up, a few tenths
# (docs/evals.md, "A bot whose machine was busy").
DEFAULT_BOT_BEHIND_LIMIT = 2.0


def behind_by_part(result: CallResult) -> list[float]:
    """Seconds the bot's machine held it behind real time in each part of the call: before its first
    turn, then each turn's."""
    starts = [-math.inf, *(t.began_at if t.began_at is not None else math.inf for t in result.turns), math.inf]
    behind = [0.0] * (len(starts) - 1)
    for stall in result.bot_stalls or []:
        index = next(i for i in range(len(behind)) if stall.at < starts[i + 1])
        behind[index] += min(stall.late, stall.waited)
    return behind


def explained(problems: list[str], behind: float, limit: float) -> bool:
    """Whether a part's failures may be its bot's machine's: it held the bot back more than `limit`
    seconds, and at least as long as any answer in it was late."""
    late = [ms for p in problems if (ms := late_by_ms(p)) is not None]
    return behind > limit and all(ms <= behind * 1000 for ms in late)


def inconclusive_reason(result: CallResult, limit: float = DEFAULT_BOT_BEHIND_LIMIT) -> str | None:
    """Why the failed call proves nothing of the bot, or None: it passed, or one of its failures is not
    explained by its bot's machine (evals/verdict.py)."""
    if result.passed or result.interrupted or not result.bot_stalls:
        return None
    parts = behind_by_part(result)
    greeting = [p for p in result.problems if p.startswith("greeting:")]
    # The call's own checks after its turns (the bot's hang-up, its session's error) fall in its last part.
    failing = [(0, greeting), *((n, t.problems) for n, t in enumerate(result.turns, 1)),
               (len(parts) - 1, [p for p in result.problems if p not in greeting])]
    failing = [(n, problems) for n, problems in failing if problems]
    if not all(explained(problems, parts[n], limit) for n, problems in failing):
        return None
    where = "before the first turn" if failing[0][0] == 0 else f"in turn {failing[0][0]}"
    return f"the bot's host fell behind real time by {parts[failing[0][0]]:.1f} s {where}: its machine was busy"
