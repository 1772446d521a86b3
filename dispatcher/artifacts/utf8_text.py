"""A bot's text as a UTF-8 file can hold it.

JSON lets a bot send a lone surrogate (`"\\ud800"`, half of a UTF-16 pair): Python reads it into a
str that UTF-8 cannot encode, so writing `transcript.jsonl` or `logs.jsonl` raised and lost the
session's report with them. Each lone surrogate becomes U+FFFD; everything else is kept as sent."""

from __future__ import annotations


def utf8_text(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
