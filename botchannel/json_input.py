"""JSON from outside the process (a request body, a frame, a cursor, a query's body), parsed so a
nesting too deep is bad JSON like any other.

`json.loads` raises RecursionError, not ValueError, for an array or object nested past the
interpreter's recursion limit: 2,000 `[` (4 KB) got past every `except ValueError` as a 500 with a
traceback, before any credential was checked. That limit is the process's, and a library may raise
it (celpy sets 2,500), so the nesting allowed is this module's own `MAX_DEPTH`, checked after the
parse. Both images carry this module (the bot's HTTP server reads bodies too)."""

from __future__ import annotations

import json
from typing import Any

# Far above any message read here (Daily's webhooks, carriers' frames and Pipecat's client messages
# nest under ten) and far below the interpreter's default limit of 1,000.
MAX_DEPTH = 64


def parse_json(data: str | bytes | bytearray) -> Any:
    """`json.loads(data)`; ValueError (a JSONDecodeError for what the parser reads as bad) when it is
    not JSON or nests deeper than MAX_DEPTH; UnicodeDecodeError, a ValueError too, for bytes that are
    not text."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if _opening_brackets(data) > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise ValueError("the JSON is nested too deeply")
    return value


def _opening_brackets(data: str | bytes | bytearray) -> int:
    """An upper bound on the nesting, counted in C: most inputs need no walk at all."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether any array or object in `value` sits more than `limit` containers deep, walked without
    recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
