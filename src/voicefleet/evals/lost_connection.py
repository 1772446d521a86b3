"""A failed call whose connection was lost: inconclusive, not failed.

A WebRTC connection is lost when ICE consent checks (RFC 7675) go unanswered on one side for about
30 s, the caller's or the bot host's (call_end.py): what a machine too busy to answer them in time
does, not the bot, which neither hung up nor crashed. The turn it was lost under, and the turns
after it, prove nothing of the bot; a turn that failed before it still fails the call.
"""

from __future__ import annotations

from voicefleet.evals.outcome import CallResult


def lost_connection_reason(result: CallResult) -> str | None:
    """Why the failed call proves nothing of the bot because its connection was lost, or None: it was
    not lost, or the call failed before it was (its greeting, an earlier turn)."""
    if result.passed or result.interrupted or result.lost_at is None or result.problems:
        return None
    if any(turn.problems for turn in result.turns[:result.lost_at - 1]):
        return None
    return result.turns[result.lost_at - 1].problems[0]
