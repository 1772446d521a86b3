"""What a scenario's call came to (its turns, heard and judged) and where the calls go: shared by the
WebRTC caller (call.py) and the phone caller (phone_call.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

from voicefleet.evals.judge import Judge
from voicefleet.evals.phases import Phases

# The seconds a caller waits for a bot's first words before it speaks first: bots that greet do within
# a few seconds, even on a loaded machine; one that waits to be spoken to (as a speech-to-speech bot
# may) then costs each call this, not the greeting's whole wait.
SPEAK_FIRST_AFTER = 10.0
# A caller's audio this far behind real time makes its call inconclusive: a tenth of a turn's usual
# latency budget, and five of the mic's 100 ms catch-up bursts (loadtest/webrtc.py).
CALLER_BEHIND_LIMIT = 0.5


class Stall(NamedTuple):
    """A second of the bot host's call in which its loop was held back (bot/loop_lag.py)."""

    at: float  # the wall-clock second
    late: float  # seconds its loop woke late in it (or a worker thread's work ran late: its wait)
    waited: float  # seconds its loop's thread (or a worker thread) waited for a CPU in it: its machine was busy


class Block(NamedTuple):
    """A time the bot's own code blocked its host's event loop (bot/own_block.py)."""

    at: float  # the wall-clock second it began
    seconds: float  # how long it lasted
    cpu: float  # seconds of CPU the loop's thread ran in it: the bot's code, not a busy machine


@dataclass
class TurnResult:
    said: str
    heard: str
    latency_ms: float | None
    problems: list[str]
    bot_heard: str = ""  # the bot's own transcript of the caller, where its RTVI events carry it
    began_at: float | None = None  # the wall-clock second the caller began the turn (bot_behind.py)
    replied_at: float | None = None  # the wall-clock second the answer's first audio reached the bot's caller
    arrived_late: float | None = None  # seconds the bot's audio reached the caller behind real time (Answer's)


@dataclass
class CallResult:
    scenario: str
    source: str
    release: str | None = None
    session_id: str | None = None
    turns: list[TurnResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the call's own: start, greeting, hang-up, errors
    seconds: float = 0.0
    phases: Phases = field(default_factory=Phases)  # where the call's time went (started when the result is)
    interrupted: bool = False  # cut short by the run's interruption (Ctrl-C), not by the bot
    caller_behind: float = 0.0  # the most the caller's audio was behind real time at a turn's end of speech
    bot_latencies_ms: list[float] | None = None  # the bot host's own, from the session's end (bot_latency.py)
    bot_stalls: list[Stall] | None = None  # where the bot host's machine held it back, from the session's end
    bot_blocks: list[Block] | None = None  # where the bot's own code blocked its host's loop (bot_blocked.py)
    lost_at: int | None = None  # the turn under which the call's connection was lost, not ended (call_end.py)
    ended_at: float | None = None  # the wall-clock second the call's session was stopped: its last part's end

    def keeps_time(self) -> bool:
        """Whether the caller kept real time: one that fell behind (a machine short of CPU) sent its
        speech late, so the turns' timing, and maybe what the bot heard, are not the bot's alone."""
        return self.caller_behind <= CALLER_BEHIND_LIMIT

    @property
    def passed(self) -> bool:
        return not self.problems and all(not turn.problems for turn in self.turns)

    def first_failure(self) -> str:
        for index, turn in enumerate(self.turns, 1):
            if turn.problems:
                as_heard = f" (the bot heard {turn.bot_heard!r})" if turn.bot_heard else ""
                return f"turn {index} ({turn.said!r}): {turn.problems[0]}{as_heard}"
        return self.problems[0] if self.problems else ""


def wall_clock(monotonic_at: float) -> float:
    """A `time.monotonic()` instant as a wall-clock second, which the bot host's figures use."""
    return time.time() - (time.monotonic() - monotonic_at)


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str | None
    release: str | None
    judge: Judge | None = None  # the scenarios' rubrics are judged only with one
    speak_first_after: float = SPEAK_FIRST_AFTER  # a bot silent this long after the call connected is spoken to

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
