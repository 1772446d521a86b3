"""An answer judged against its expectation: deterministic, word-wise, case-insensitive.

"contains" matches whole words and phrases ("two" is not found in "twenty"), after the text is
lowered and its punctuation dropped, so what a voice speaks and what a scenario writes compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voicefleet.evals.scenario import Expect


@dataclass(frozen=True)
class Answer:
    text: str  # what the bot said, as its own text events report it ("" for nothing)
    latency_ms: float | None  # the caller's end of speech → the answer's first audio; None: no audio heard
    caller_as_heard: str = ""  # what the bot transcribed of the caller's turn, where it says
    # Seconds the bot's audio reached the caller behind the bot's own clock (loadtest/arrival_lag.py): at
    # the answer's first audio, or the most while the caller listened for one it did not hear; None: unknown.
    arrived_late: float | None = None


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def has_phrase(text: str, phrase: str) -> bool:
    """Whether `text` holds `phrase` as whole words (case and punctuation aside)."""
    wanted = words(phrase)
    return bool(wanted) and re.search(rf"(?<![a-z0-9']){re.escape(wanted)}(?![a-z0-9'])", words(text)) is not None


def failures(expect: Expect, answer: Answer) -> list[str]:
    """Each way the answer misses its expectation, as a person would say it; [] when it passes."""
    said = answer.text.strip()
    if expect.silent:
        if said:
            return [f"expected silence, heard {said!r}"]
        # Audio without words (a bot that reports none, a phone call not reading them) is no silence either.
        spoke = answer.latency_ms
        return [] if spoke is None else [f"expected silence, the bot spoke after {spoke:.0f} ms"]
    problems = []
    if not said and (expect.contains or expect.matches or expect.within_ms):
        return [HEARD_NOTHING]
    for phrase in expect.contains:
        if not has_phrase(said, phrase):
            problems.append(f"expected {phrase!r}, heard {said!r}")
    for phrase in expect.not_contains:
        if has_phrase(said, phrase):
            problems.append(f"expected no {phrase!r}, heard {said!r}")
    if expect.matches is not None and re.search(expect.matches, said, re.IGNORECASE) is None:
        problems.append(f"expected to match /{expect.matches}/, heard {said!r}")
    if expect.within_ms is not None:
        if answer.latency_ms is None:
            problems.append(_NO_AUDIO.format(within=expect.within_ms))
        elif answer.latency_ms > expect.within_ms:
            problems.append(_LATE.format(within=expect.within_ms, after=answer.latency_ms))
    return problems


HEARD_NOTHING = "expected an answer, heard nothing"
NO_HANG_UP = "expected the bot to end the call after its last answer"  # `bot_ends`, the hang-up not seen
_NO_AUDIO = "expected audio within {within} ms, heard none"
_LATE = "expected audio within {within} ms, it began after {after:.0f} ms"
_LATE_PATTERN = re.compile(r"expected audio within (\d+) ms, it began after (\d+) ms")
_NO_AUDIO_PATTERN = re.compile(r"expected audio within \d+ ms, heard none")


def unheard(problem: str) -> bool:
    """Whether the problem `failures` wrote is an answer not heard at all (too late for the turn, or never given)."""
    return problem == HEARD_NOTHING or _NO_AUDIO_PATTERN.fullmatch(problem) is not None


def late_by_ms(problem: str) -> float | None:
    """How far past its `within_ms` an answer began, from the problem `failures` wrote; None for any other."""
    found = _LATE_PATTERN.fullmatch(problem)
    return None if found is None else float(found.group(2)) - float(found.group(1))
