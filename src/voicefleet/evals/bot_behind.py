"""A failed call whose bot's machine held it back: inconclusive, not failed.

The bot host reports, second by second, how late its event loop woke and how long its thread waited
for a CPU (bot/loop_lag.py). The lesser of the two is how far its machine held it behind real time:
a host starved of CPU runs its loop late, waiting for a CPU all the while (its answers play
stretched, the caller is heard late); a bot slow by design keeps its loop on time, and one that
blocks its own loop (`time.sleep`) runs it late without waiting for a CPU (docs/evals.md says why the
wait alone says little, and that a worker thread's wait counts in both).

Each of the call's turns owns the seconds from the caller's start of it to the start of the next, the
last one's to the call's end (the greeting, those before the first turn), laid on the caller's wall
clock, with the backlog the parts before it left: a host held back more than it can catch up on stays
behind (its audio comes at real time) until it has worked it off (`carried_into`). A failure is inconclusive
- an answer that began too late (`within_ms`): when its bot was held behind, before the answer began,
  and its audio reached the caller behind the bot's own clock past what its host's loop ran late (the
  way back: the caller's socket and loop, loadtest/arrival_lag.py, `way_back`), together at least as
  long as the answer was late by (a bot slow by design is late by more than both, and fails);
- an answer not heard at all: when its bot was held behind, or the way back was behind, more than
  `bot_behind_limit` seconds; what was judged without it (rubrics) or never reached (a hang-up) goes with it;
- any other (words expected, not heard): when, as well, the bot did not hear the caller's words as
  said (split, or not transcribed, in its RTVI events; words it transcribed only in a later turn count the
  parts until then); a bot that heard them and answered wrong is wrong, however busy its machine.
A call is inconclusive when every one of its failures is.
"""

from __future__ import annotations

import math

from voicefleet.evals.checks import NO_HANG_UP, has_phrase, late_by_ms, unheard, words
from voicefleet.evals.outcome import CallResult, Stall, TurnResult

# Seconds a turn's bot may be held behind before an answer not heard, or misheard words, prove nothing:
# the booking line's calls that passed beside two busy processes on 2 cores (load 17-21) were held
# 0.7-4.6 s in their worst turn (median 2.2 s, worker threads counted), a starved test bot 13-14 s
# (docs/evals.md, "A bot whose machine was busy").
DEFAULT_BOT_BEHIND_LIMIT = 2.0
# How much faster than real time a host works through its backlog while it runs: at 2, a host held back
# half of each second just keeps up (the booking line's passed its calls beside busy processes held up
# to 4.6 s in a turn), and one held more falls further behind with each second. An assumption, not a
# measurement: the host does not report its own catch-up (docs/evals.md, "A bot whose machine was busy").
CATCH_UP_SPEED = 2.0


def part_of(result: CallResult, at: float) -> int | None:
    """The part of the call wall second `at` falls in: 0 before its first turn, then each turn's number;
    None once the call was over (what its bot host did after, its teardown, is no turn's)."""
    if at >= call_over_at(result):
        return None
    starts = [*(t.began_at if t.began_at is not None else math.inf for t in result.turns), math.inf]
    return next(i for i, start in enumerate(starts) if at < start)


def call_over_at(result: CallResult) -> float:
    """The wall second the call was over: its stop (`ended_at`), else, at the latest, its first turn's start
    plus the call's whole length (which began before it); unknown (never) without either."""
    if result.ended_at is not None:
        return result.ended_at
    began = [t.began_at for t in result.turns if t.began_at is not None]
    return min(began) + result.seconds if began and result.seconds > 0 else math.inf


def held(stall: Stall) -> float:
    """Seconds the bot's machine held it behind real time in the stall's second: its loop late while it
    waited for a CPU (a loop late of its own doing, or waiting yet on time, is not held)."""
    return min(stall.late, stall.waited)


def carried_into(result: CallResult, at: float | None) -> float:
    """The backlog the bot's host had at wall second `at` (a turn's start). Each second brings a second of
    audio to handle, and the host runs the part of it it was not held back, at CATCH_UP_SPEED: held
    `h`, its backlog grows by `1 - CATCH_UP_SPEED * (1 - h)` (shrinks, below 0). Held back in every
    second, it falls further behind with each: a greeting does not end, nor the caller's turn reach
    its recogniser, until the host has worked through what came before."""
    if at is None:
        return 0.0
    stalls = sorted(s for s in result.bot_stalls or [] if s.at < at)
    backlog, since = 0.0, stalls[0].at if stalls else at  # since: the end of the last second reckoned

    def ran(seconds: float, held_back: float) -> None:
        nonlocal backlog
        backlog = max(0.0, backlog + seconds - CATCH_UP_SPEED * (seconds - held_back))

    for stall in stalls:
        ran(max(0.0, stall.at - since), 0.0)  # the seconds without a stall: not held back
        ran(max(1.0, held(stall)), held(stall))  # a stall of seconds on end is noted in the second it ended
        since = stall.at + 1
    ran(max(0.0, at - since), 0.0)
    return backlog


def behind_by_part(result: CallResult) -> list[float]:
    """Seconds the bot's machine held it behind real time in each part of the call: before its first
    turn, then each turn's with the backlog the parts before it left."""
    behind = [0.0, *(carried_into(result, t.began_at) for t in result.turns)]
    for stall in result.bot_stalls or []:
        if (part := part_of(result, stall.at)) is not None:
            behind[part] += held(stall)
    return behind


def behind_until_reply(result: CallResult, turn: TurnResult) -> float:
    """Seconds the bot's machine held it behind from the caller's start of the turn to its answer's
    first audio, with the backlog it began the turn with: what may have delayed the answer (what came
    after it did not)."""
    if turn.began_at is None or turn.replied_at is None:
        return math.inf  # not known: the turn's whole part decides
    return carried_into(result, turn.began_at) + sum(
        held(s) for s in result.bot_stalls or [] if turn.began_at <= s.at < turn.replied_at)


def way_back(result: CallResult, number: int) -> float:
    """Seconds the bot's audio reached the caller late in turn `number` (TurnResult.arrived_late) beyond
    what its bot host's loop ran late in the turn before the answer's first audio came (what came after
    cannot have made that audio late), by its machine or by its own doing, and the backlog carried into
    it: the hops after the bot's output (the network, the caller's socket and loop). A bot that blocks
    its own loop (`time.sleep(3)`) sends its audio that much late, and that is its own."""
    turn = result.turns[number - 1]
    until = math.inf if turn.replied_at is None else turn.replied_at
    own = carried_into(result, turn.began_at) + sum(
        s.late for s in result.bot_stalls or [] if part_of(result, s.at) == number and s.at < until)
    return max(0.0, (turn.arrived_late or 0.0) - own)


def explained(problem: str, behind: float, limit: float, *, misheard: bool, until_reply: float = math.inf,
              arrived_late: float = 0.0) -> bool:
    """Whether a failure may be a busy machine's: its bot's, which held it `behind` seconds in its part of
    the call (`until_reply` of them before its answer began), and the way back to the caller, which
    brought the bot's audio `arrived_late` seconds later than its host's loop ran late (`way_back`).
    Either hop's wait is one the bot did not choose; a bot slow by design is late by more than both."""
    if (late_ms := late_by_ms(problem)) is not None:
        return late_ms <= (min(behind, until_reply) + arrived_late) * 1000
    if unheard(problem) and arrived_late > limit:  # its words came that late too, on the same connection
        return True
    return behind > limit and (misheard or unheard(problem) or problem == NO_HANG_UP)


def judged(problem: str) -> bool:
    """Whether the problem is a rubric the judge did not pass (call.py's `_judge`)."""
    return problem.startswith("rubric ")


def follows_the_answers(problem: str) -> bool:
    """Whether the call's problem follows from the conversation as it went, so an answer not heard takes
    it along: a rubric, or a hang-up not seen (`bot_ends`: the bot's goodbye comes at its end)."""
    return judged(problem) or problem == NO_HANG_UP


def _not_heard(turns: list[TurnResult]) -> bool:
    """Whether an answer of these turns was not heard at all."""
    return any(unheard(p) for t in turns for p in t.problems)


def misheard(turn: TurnResult, transcribes: bool = False) -> bool:
    """Whether the bot's own transcript of the caller's turn is not the words said. None at all: the bot heard
    nothing of them where it reports its transcripts (`transcribes`: another turn of the call has one), else
    unknown (a recording's turn, a bot whose RTVI events carry none), taken as heard."""
    if not turn.bot_heard:
        return transcribes
    return "|" in turn.bot_heard or words(turn.bot_heard) != words(turn.said)  # " | " joins its transcripts


def inconclusive_reason(result: CallResult, limit: float = DEFAULT_BOT_BEHIND_LIMIT) -> str | None:
    """Why the failed call proves nothing of the bot, or None: it passed, or one of its failures is not
    explained by its bot's machine (evals/verdict.py)."""
    if result.passed or result.interrupted or not result.bot_stalls:
        return None
    parts = behind_by_part(result)
    # The call's own checks: the greeting's before its first turn, the rest (the bot's hang-up, its
    # session's error) after its last. Only a greeting not heard at all may be the machine's.
    failing = [(0 if p.startswith("greeting:") else len(parts) - 1, p.removeprefix("greeting: "))
               for p in result.problems]
    # A rubric judged on a conversation that lacks an answer (the call's, or the turn's own), or a hang-up
    # after a goodbye the bot never reached, goes with the answer not heard, whose turn's part decides below.
    if not all((follows_the_answers(p) and _not_heard(result.turns)) or explained(p, parts[n], limit, misheard=False)
               for n, p in failing):
        return None
    turns = [(n, p, t) for n, t in enumerate(result.turns, 1) for p in t.problems]
    if not _turns_explained(result, parts, limit, arrival=True):
        return None
    failing += [(n, p) for n, p, _ in turns]
    first = min(n for n, _ in failing)
    where = "before the first turn" if first == 0 else f"in turn {first}"
    reason = f"the bot's host fell behind real time by {parts[first]:.1f} s {where}"
    if _turns_explained(result, parts, limit, arrival=False):  # its host's own figures explain it
        return f"{reason}: its machine was busy"
    late = max(way_back(result, n) for n in range(1, len(result.turns) + 1))
    return f"{reason}, and the way from it to the caller by {late:.1f} s more: a machine was busy"


def heard_in(result: CallResult, number: int) -> int:
    """The turn whose part of the call the bot's recogniser reached turn `number`'s words in: its own, or a
    later one whose transcript has them where its own has not (the keys of a keypad turn, as sent)."""
    turns = result.turns
    said = turns[number - 1].said.removeprefix("keys ")
    if not words(said) or has_phrase(turns[number - 1].bot_heard, said):
        return number
    return next((n for n in range(number + 1, len(turns) + 1) if has_phrase(turns[n - 1].bot_heard, said)), number)


def held_span(result: CallResult, number: int) -> tuple[int, int]:
    """The turns whose parts of the call may have held turn `number`'s answer: from the earliest turn whose words
    the bot reached only in this turn or later (it answered them late, into this one) to the turn it reached this
    one's words in."""
    first = min(n for n in range(1, number + 1) if heard_in(result, n) >= number)
    return first, heard_in(result, number)


def _turns_explained(result: CallResult, parts: list[float], limit: float, *, arrival: bool) -> bool:
    """Whether every turn's failure may be a busy machine's: the bot host's, with (`arrival`) the way back
    to the caller's too. Words its recogniser reached only in a later turn were held until then: the parts
    between count (`held_span`), as its loop's figures alone understate what its recogniser's thread was held."""
    transcribes = any(t.bot_heard for t in result.turns)
    spans = {n: held_span(result, n) for n in range(1, len(result.turns) + 1)}
    return all((judged(p) and _not_heard(result.turns[:n]))
               or explained(p, max(parts[spans[n][0]:spans[n][1] + 1]), limit, misheard=misheard(t, transcribes),
                            until_reply=behind_until_reply(result, t),
                            arrived_late=way_back(result, n) if arrival else 0.0)
               for n, t in enumerate(result.turns, 1) for p in t.problems)
