"""Values that others chose (a bot's machine id, a provider's message), made safe to log.

A log line is one line: a value with a newline in it could forge a whole record below it. So
control characters are escaped (`\\n` is written as the two characters `\\` `n`) and the
value is cut to a length a reader can use.
"""

from __future__ import annotations

MAX_SHOWN_CHARS = 200
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029",
}


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` as one printable line for a log record."""
    text = str(value)
    if len(text) <= limit and text.isprintable():  # the common case: nothing to escape (every escape is non-printable)
        return text
    text = text.translate(_ESCAPES)
    return text if len(text) <= limit else text[:limit] + "…"
