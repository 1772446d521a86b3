"""A bot's reported service counts, bounded by its session's length (a rate per second, plus
`SLACK_SECONDS`), as the relay's bytes are: a bot is trusted no further than a real service could go
in that time, so one bot cannot run up its key's spend. The bound is the session's, for each kind
and count summed over its rows: a bot that splits its use over many rows gets no more. A count past
what is left of its bound is counted at that and the cost says so. The rates and why each is out of
a real call's reach: docs/operations.md, "What a call costs, and who used it"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SLACK_SECONDS = 60.0  # the bot's clock and the machine's differ; a short call is not cut for it
INPUT_TOKENS_PER_SECOND = 1_000_000.0
OUTPUT_TOKENS_PER_SECOND = 10_000.0
PER_SECOND: dict[str, dict[str, float]] = {
    "llm": {"prompt_tokens": INPUT_TOKENS_PER_SECOND, "cache_read_input_tokens": INPUT_TOKENS_PER_SECOND,
            "cache_creation_input_tokens": INPUT_TOKENS_PER_SECOND, "input_audio_tokens": INPUT_TOKENS_PER_SECOND,
            "cache_read_input_audio_tokens": INPUT_TOKENS_PER_SECOND,
            "completion_tokens": OUTPUT_TOKENS_PER_SECOND, "reasoning_tokens": OUTPUT_TOKENS_PER_SECOND,
            "output_audio_tokens": OUTPUT_TOKENS_PER_SECOND},
    "tts": {"characters": 1_000.0},
    "stt": {"audio_seconds": 1.0},
}


Bounded = tuple[dict[str, Any], dict[str, float]]  # a row as counted, and its counts cut (the bot's figures)


def bounded_rows(rows: Sequence[Mapping[str, Any]], seconds: float) -> list[Bounded]:
    """Each row with its counts within what is left of its kind's bound over `seconds` (the
    session's), in the bot's order, and the counts cut (each with its reported figure). A count with
    no bound of its own here is left as reported (botchannel/usage.py accepts only those listed above)."""
    span = max(0.0, seconds) + SLACK_SECONDS
    left: dict[tuple[str, str], float] = {}  # (kind, count) → what the session may still count of it
    found: list[Bounded] = []
    for row in rows:
        kind = str(row.get("kind"))
        rates = PER_SECOND.get(kind, {})
        kept, cut = dict(row), {}
        for name, value in row.items():
            rate = rates.get(name)
            if rate is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            room = left.get((kind, name), rate * span)
            if value > room:
                kept[name], cut[name] = room, float(value)
            left[(kind, name)] = max(0.0, room - min(float(value), room))
        found.append((kept, cut))
    return found
