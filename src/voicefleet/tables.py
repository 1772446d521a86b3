"""Tables for people (`--json` is for scripts): upper-case headers, columns two spaces apart, as
`kubectl get` and `gh ... list` print them. What the dispatcher answers may hold text a bot chose (a
model's name, a transcript): every string printed goes through `printable`, so a terminal shows an
escape sequence (a clipboard write, a link, a cleared screen) rather than running it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    shown = [[printable(cell) for cell in line] for line in (headers, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*shown, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in shown]
    return "\n".join(lines)


def printable(value: object) -> str:
    """`value` as one line of text: each control character (ESC, BEL, CR, a C1 code) and every other
    unprintable one (a bidirectional override, a line separator) written as its Python escape. The
    dispatcher's logs escape by this same rule (`shown`, dispatcher/observability/log_text.py)."""
    text = str(value)
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """`printable` for each line of a block printed as a whole (a report, a set of facts)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet reads as text, never a formula: `printable`, and one that starts as a
    formula does (`=`, `+`, `@`, or `-` with more after it) is led by `'`, as OWASP advises."""
    text = printable(value)
    return "'" + text if text[:1] in ("=", "+", "@") or (text[:1] == "-" and len(text) > 1) else text


def moment(value: object) -> str:
    """An epoch (seconds) as UTC to the second; anything else as it came; nothing as `-`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return "-" if value is None or value == "" else str(value)


def ago(value: object, now: float | None = None) -> str:
    """An epoch (seconds) as how long before `now`: `45s ago`, `12m ago`, `3h ago`, `2d ago`."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    seconds = max(0, int((time.time() if now is None else now) - value))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
