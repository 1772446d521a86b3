"""A bot's turns as the dispatcher keeps them (`transcript.jsonl`): the bot's own account, so each
line is checked and bounded before it is written, whatever the bot sent.

A line: `who` (`caller` or `bot`), `text`, `start` and `end` (seconds into the recording), for the
bot `interrupted` and `latency` (the caller's end of speech → the bot's first audio, seconds)."""

from __future__ import annotations

import math
from typing import Any

from botchannel.utf8_text import utf8_text

MAX_LINES = 1000
MAX_TEXT = 2000
WHO = ("caller", "bot")


def transcript_lines(sent: object) -> list[dict[str, Any]] | None:
    """The lines of `sent` that follow the shape (others dropped); None when it sent none."""
    if not isinstance(sent, list):
        return None
    lines = []
    for line in sent[:MAX_LINES]:
        if not isinstance(line, dict) or line.get("who") not in WHO or not isinstance(line.get("text", ""), str):
            continue
        kept: dict[str, Any] = {"who": line["who"], "text": utf8_text(line.get("text", "")[:MAX_TEXT])}
        for name in ("start", "end", "latency"):
            if _seconds(line.get(name)):
                kept[name] = float(line[name])
        if line["who"] == "bot" and isinstance(line.get("interrupted"), bool):
            kept["interrupted"] = line["interrupted"]
        lines.append(kept)
    return lines


def _seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
