"""JSON from outside the process (a request body, a frame, a cursor, a query's body), parsed so a
nesting too deep for the parser is bad JSON like any other.

`json.loads` raises RecursionError, not ValueError, for an array or object nested past the
interpreter's recursion limit: 2,000 `[` (4 KB) got past every `except ValueError` as a 500 with a
traceback, before any credential was checked. Both images carry this module (the bot's HTTP server
reads bodies too)."""

from __future__ import annotations

import json
from typing import Any


def parse_json(data: str | bytes | bytearray) -> Any:
    """`json.loads(data)`; ValueError (a JSONDecodeError for what the parser reads as bad) when it is
    not JSON or nests too deep; UnicodeDecodeError, a ValueError too, for bytes that are not text."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
