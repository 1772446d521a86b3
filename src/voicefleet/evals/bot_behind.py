"""A failed call whose bot's machine held it back: inconclusive, not failed.

The bot host reports, second by second, how long its pipeline's thread waited for a CPU (bot/loop_lag.py):
a host starved of CPU plays its answers stretched and hears the caller late, while a bot slow by
design, or one that blocks its own loop, waits for no CPU. Each of the call's turns owns the seconds
from the caller's start of it to the start of the next (the greeting, those before the first turn),
laid on the caller's wall clock. From the first part of the call whose bot waited more than
`bot_behind_limit` seconds for a CPU on, the call's failures are not the bot's alone (a sentence heard
late and split changes what follows), so a call whose every failure is there is inconclusive; a
failure before it is the bot's, and the call fails.
"""

from __future__ import annotations

import math

from voicefleet.evals.outcome import CallResult

# Seconds: a starved answer waits seconds for a CPU; a bot on a loaded host that keeps up, a few tenths.
DEFAULT_BOT_BEHIND_LIMIT = 1.0


def behind_by_part(result: CallResult) -> list[tuple[float, float]]:
    """(seconds late, seconds waited for a CPU) of the bot host in each part of the call: before its
    first turn, then each turn's."""
    starts = [-math.inf, *(t.began_at if t.began_at is not None else math.inf for t in result.turns), math.inf]
    late, waited = [0.0] * (len(starts) - 1), [0.0] * (len(starts) - 1)
    for stall in result.bot_stalls or []:
        index = next(i for i in range(len(late)) if stall.at < starts[i + 1])
        late[index] += stall.late
        waited[index] += stall.waited
    return list(zip(late, waited, strict=True))


def inconclusive_reason(result: CallResult, limit: float = DEFAULT_BOT_BEHIND_LIMIT) -> str | None:
    """Why the failed call proves nothing of the bot, or None: it passed, its bot's machine let it keep
    real time (or it reported nothing), or it failed before that machine held it back."""
    if result.passed or result.interrupted or not result.bot_stalls:
        return None
    parts = behind_by_part(result)
    first = next((i for i, (_, waited) in enumerate(parts) if waited > limit), None)
    if first is None:
        return None
    if any(turn.problems for turn in result.turns[:max(0, first - 1)]):
        return None  # a turn failed before the host fell behind
    if first > 0 and any(p.startswith("greeting:") for p in result.problems):
        return None
    late, waited = parts[first]
    where = "before the first turn" if first == 0 else f"in turn {first}"
    return (f"the bot's host fell behind real time by {max(late, waited):.1f} s {where} ({waited:.1f} s waiting "
            "for a CPU): its machine was busy")
