"""The `usage` an `ended` report carries: what the session's services used (bot/usage_meter.py sums
it from Pipecat's usage metrics), one row per service and model.

A row is `{"kind": "llm"|"tts"|"stt", "processor", "model" (or null), <count>: number, ...}` with the
counts its kind has: an LLM's tokens (speech-to-speech audio tokens among them), TTS `characters`,
STT `audio_seconds`. The dispatcher takes at most `MAX_ROWS` rows, each count finite and at least 0,
and prices them (dispatcher/usage/).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_ROWS = 16
MAX_NAME_CHARS = 120
COUNTS: dict[str, tuple[str, ...]] = {
    "llm": ("prompt_tokens", "completion_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
            "reasoning_tokens", "input_audio_tokens", "output_audio_tokens", "cache_read_input_audio_tokens"),
    "tts": ("characters",),
    "stt": ("audio_seconds",),
}
# During the call the bot host also sends its use so far, the same rows, as a request of this method
# (`{"usage": [...]}`), answered `{"every_seconds": n}`, how long to wait before the next: a bot killed
# before its `ended` report still has its use counted up to its last one. An older dispatcher answers
# 404 `unknown_method`, and the host stops asking.
METHOD_USAGE_SO_FAR = "usage.so_far"
MAX_COUNT = 1e12  # far above any one call's use; a larger figure is a broken or hostile report


class UsageError(ValueError):
    pass


def parse_usage(value: object) -> tuple[dict[str, Any], ...]:
    """The report's `usage` rows, checked; raises `UsageError` naming the first thing wrong."""
    if not isinstance(value, list):
        raise UsageError("usage must be a list of rows")
    if len(value) > MAX_ROWS:
        raise UsageError(f"usage: at most {MAX_ROWS} rows")
    return tuple(_row(n, row) for n, row in enumerate(value))


def _row(n: int, row: object) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise UsageError(f"usage[{n}] must be an object")
    kind = row.get("kind")
    if kind not in COUNTS:
        raise UsageError(f"usage[{n}].kind must be one of {', '.join(COUNTS)}")
    processor, model = row.get("processor"), row.get("model")
    if not _name(processor) or not processor:
        raise UsageError(f"usage[{n}].processor must be a name of at most {MAX_NAME_CHARS} printable characters")
    if model is not None and not _name(model):
        raise UsageError(f"usage[{n}].model must be null or a name of at most {MAX_NAME_CHARS} printable characters")
    parsed: dict[str, Any] = {"kind": kind, "processor": processor, "model": model or None}
    for name, count in row.items():
        if name in ("kind", "processor", "model"):
            continue
        if name not in COUNTS[kind]:
            raise UsageError(f"usage[{n}]: {name!r} is not a count of a {kind} service")
        if not in_range(count):
            raise UsageError(f"usage[{n}].{name} must be a number from 0 to {MAX_COUNT:g}")
        parsed[name] = count
    return parsed


def _name(value: object) -> bool:
    """A service's or model's name as people read it (`voicefleet usage --by model`, a session's
    services): no control characters, which a terminal would run as escapes (a clipboard write, a
    link, a cleared screen), and no other unprintable ones."""
    return isinstance(value, str) and len(value) <= MAX_NAME_CHARS and value.isprintable()


def in_range(count: object) -> bool:
    """A finite JSON number from 0 to MAX_COUNT. Compared as it came: `math.isfinite` of an integer
    too large for a float (json reads `1` and 400 zeros as one) raises OverflowError, not a refusal."""
    if isinstance(count, bool) or not isinstance(count, int | float):
        return False
    return 0 <= count <= MAX_COUNT and (isinstance(count, int) or math.isfinite(count))
