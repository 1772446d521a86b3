"""Whole numbers read from what a request carries (a header, a credential's field), bounded before
they are parsed: `int()` of a few hundred digits succeeds, and the float arithmetic after it then
raises `OverflowError`, an unhandled 500 with a traceback for whoever sent them."""

from __future__ import annotations


def bounded_digits(text: str, at_most: int) -> int | None:
    """`text` as a number when it is 1 to `at_most` ASCII digits (no sign, space or `_`); else None."""
    if not (0 < len(text) <= at_most and text.isascii() and text.isdigit()):
        return None
    return int(text)
