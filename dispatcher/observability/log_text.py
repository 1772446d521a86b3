"""Values that others chose (a bot's machine id, a provider's message), made safe to log.

A log line is one line a person reads in a terminal: a value with a newline in it could forge a
whole record below it, and a C1 code (U+009B is a CSI) or a bidirectional override (U+202E) would
be run or reorder what is shown. So every character `str.isprintable()` refuses is written as its
Python escape (`\\n` as the two characters `\\` `n`), the one rule of the `voicefleet` command's
`printable` (src/voicefleet/tables.py, which imports nothing of the dispatcher's), and the value is
cut to a length a reader can use.
"""

from __future__ import annotations

MAX_SHOWN_CHARS = 200


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` as one printable line for a log record."""
    text = str(value)
    if not text.isprintable():  # the common case is printable: nothing to escape
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"
