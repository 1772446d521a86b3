"""A bot's text as UTF-8 can hold it.

JSON lets a bot send a lone surrogate (`"\\ud800"`, half of a UTF-16 pair): Python reads it into a
str that UTF-8 cannot encode, so writing `transcript.jsonl` or `logs.jsonl`, or answering a session's
JSON, raised. Each lone surrogate becomes U+FFFD; everything else is kept as sent. `parse_frame`
(botchannel/contract.py) passes every frame through `utf8_strings`, once, whichever field it is."""

from __future__ import annotations

from typing import Any


def utf8_text(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def may_hold_surrogates(raw: str | bytes | bytearray) -> bool:
    """Whether JSON text may hold a lone surrogate, so most frames are not walked at all: as a `\\u`
    escape, or in bytes as its own encoding (ED A0-BF ..), which json.loads(bytes) decodes with
    surrogatepass (ED also leads U+D000-D7FF, Hangul: those are walked, and kept)."""
    return ("\\u" in raw) if isinstance(raw, str) else (b"\\u" in raw or b"\xed" in raw)


def utf8_strings(value: Any) -> Any:
    """`value` (JSON as parsed) with `utf8_text` applied to every string in it, keys included.
    Recursive: parse_json bounds the nesting far below the interpreter's limit."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, list):
        return [utf8_strings(item) for item in value]
    if isinstance(value, dict):
        return {utf8_text(key): utf8_strings(item) for key, item in value.items()}
    return value
