"""Tables for people (`--json` is for scripts): upper-case headers, columns two spaces apart, as
`kubectl get` and `gh ... list` print them."""

from __future__ import annotations

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
