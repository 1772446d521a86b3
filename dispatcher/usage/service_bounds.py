"""A bot's reported service counts, bounded by its session's length (a rate per second, plus
`SLACK_SECONDS`), as the relay's bytes are: a bot is trusted no further than a real service could go
in that time, so one bot cannot run up its key's spend. A count past its bound is counted at the
bound and the cost says so. The rates and why each is out of a real call's reach: docs/operations.md,
"What a call costs, and who used it"."""

from __future__ import annotations

from collections.abc import Mapping
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


def bounded(row: Mapping[str, Any], seconds: float) -> tuple[dict[str, Any], dict[str, float]]:
    """The row with each count at most its bound over `seconds` (the session's), and the counts cut
    (each with its reported figure). A count with no bound of its own here is left as reported
    (botchannel/usage.py accepts only the counts listed above)."""
    rates = PER_SECOND.get(str(row.get("kind")), {})
    span = max(0.0, seconds) + SLACK_SECONDS
    kept, cut = dict(row), {}
    for name, value in row.items():
        rate = rates.get(name)
        if rate is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        bound = rate * span
        if value > bound:
            kept[name], cut[name] = bound, float(value)
    return kept, cut
