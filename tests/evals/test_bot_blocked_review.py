"""Review of how the eval lays the bot's own blocks on the call (src/voicefleet/evals/bot_blocked.py): a
block the bot host reports for after the call was over still turns a lost connection into the bot's
failure. It failed on the code as merged (the last turn owned every second after its start)."""

from __future__ import annotations

from voicefleet.evals.bot_blocked import blame_blocks
from voicefleet.evals.outcome import Block, CallResult, Stall, TurnResult
from voicefleet.evals.verdict import Rules

LOST = ("the call's connection was lost at turn 2, as the bot's host saw it: ICE consent expired: the caller "
        "answered none of its consent checks for 31 s (a machine too busy to answer them, the caller's or this one)")
HEARD_NOTHING = "expected an answer, heard nothing"
FIRST = 1_000_000.0  # the wall-clock second the caller began turn 1


def lost_at_turn_two(blocks: list[Block]) -> CallResult:
    """Turn 1 answered; turn 2's connection lost while the bot's machine was starved (31 s behind, waiting for
    a CPU through most of it). The whole call lasted 80 s from before turn 1 began."""
    busy = [Stall(FIRST + 41.0 + n, 1.0, 0.9) for n in range(31)]
    return CallResult("book", "book.toml", session_id="s1", lost_at=2, seconds=80.0, bot_stalls=busy,
                      bot_blocks=blocks, turns=[TurnResult("hello", "hi", 900.0, [], began_at=FIRST),
                                                TurnResult("seven", "", None, [LOST, HEARD_NOTHING],
                                                           began_at=FIRST + 40.0)])


def test_a_block_after_the_call_was_over_does_not_fail_a_lost_connection() -> None:
    rules = Rules()
    assert rules.outcome(lost_at_turn_two([])) == "inconclusive"  # the machine alone: nothing proven
    # The call ended by FIRST + 80 at the latest; the host's block came 10 minutes after its start.
    after = lost_at_turn_two([Block(FIRST + 600.0, 1.5, 1.4)])
    blame_blocks(after)
    assert after.turns[1].problems == [LOST, HEARD_NOTHING]
    assert rules.outcome(after) == "inconclusive"


def test_the_last_turn_ends_at_the_calls_stop_and_a_block_within_it_still_fails_the_call() -> None:
    """The runner's stop (`ended_at`) ends the last part where it is known: a block in the last turn
    before it is the bot's failure; one after it, though within the call's length, is no turn's."""
    rules = Rules()
    within = lost_at_turn_two([Block(FIRST + 50.0, 31.0, 30.5)])
    blame_blocks(within)
    assert within.turns[1].problems[0].startswith("the bot blocked its event loop for 31 s at turn 2")
    assert rules.outcome(within) == "failed"
    stopped = lost_at_turn_two([Block(FIRST + 75.0, 1.5, 1.4)])
    stopped.ended_at = FIRST + 72.0
    blame_blocks(stopped)
    assert stopped.turns[1].problems == [LOST, HEARD_NOTHING]
    assert rules.outcome(stopped) == "inconclusive"
