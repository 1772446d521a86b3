"""Tables for people (`--json` is for scripts): upper-case headers, columns two spaces apart, as
`kubectl get` and `gh ... list` print them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in (headers, *rows)]
    return "\n".join(lines)


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
