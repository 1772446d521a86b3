"""A failed call whose bot blocked its own host's event loop: failed, never inconclusive.

A host that fell behind real time (bot_behind.py) or lost its call's connection (lost_connection.py)
makes a failed call inconclusive, as its machine may be to blame. Its bot host tells its own code's
blocks of the loop from a machine that starved it (bot/own_block.py: the loop's thread ran the CPU
through the block), and reports them with the session's end; a turn that failed in whose part of the
call (the seconds from the caller's start of it to the start of the next, the last one's to the call's end,
as bot_behind.py lays them)
the bot blocked its loop fails with that as its first reason, whatever its machine did meanwhile.
A block in a turn that passed fails nothing: it did not keep the bot from its answer.
"""

from __future__ import annotations

from voicefleet.evals.bot_behind import part_of
from voicefleet.evals.outcome import Block, CallResult

BLOCKED = "the bot blocked its event loop"


def block_words(block: Block, turn: int) -> str:
    where = "before the first turn" if turn == 0 else f"at turn {turn}"
    return f"{BLOCKED} for {block.seconds:.0f} s {where}"


def blocked_reason(result: CallResult) -> str | None:
    """The first block its bot made in a failed part of the call, in words; None when there is none."""
    for block in sorted(result.bot_blocks or [], key=lambda b: b.at):
        part = part_of(result, block.at)
        if part is None:  # after the call was over
            continue
        failed = result.turns[part - 1].problems if part else result.problems
        if failed:
            return block_words(block, part)
    return None


def blame_blocks(result: CallResult) -> None:
    """Names the bot's block first among the problems of the failed part of the call it fell in (a turn's,
    or the call's own before its first turn), unless its host's end already named it (call_end.py)."""
    for block in sorted(result.bot_blocks or [], key=lambda b: b.at):
        part = part_of(result, block.at)
        if part is None:  # after the call was over
            continue
        problems = result.turns[part - 1].problems if part else result.problems
        if problems and not problems[0].startswith(BLOCKED):
            problems.insert(0, block_words(block, part))
