"""A value someone else chose is logged as one printable line, cut to a readable length."""

from __future__ import annotations

import pytest

from dispatcher.observability.log_text import shown
from voicefleet.tables import printable

# What a terminal would run or reorder: C0 and DEL, C1 (a CSI, an OSC, a string terminator, NEL),
# bidirectional overrides and isolates, line and paragraph separators, a lone surrogate.
UNPRINTABLE = ["\x1b", "\x07", "\x7f", "\x85", "\x9b", "\x9d", "\x9c", "\u202a", "\u202b", "\u202c", "\u202d",
               "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u2028", "\u2029", "\ud800"]


def test_a_printable_value_is_logged_as_it_is() -> None:
    assert shown("machine 148e-ab_7 é 日本 \\x1b") == "machine 148e-ab_7 é 日本 \\x1b"


def test_control_characters_and_line_separators_are_escaped() -> None:
    assert shown("a\nforged line\r\t\x00\x85\u2028\u2029\x7f") == "a\\nforged line\\r\\t\\x00\\x85\\u2028\\u2029\\x7f"


@pytest.mark.parametrize("char", UNPRINTABLE)
def test_every_unprintable_character_is_escaped_by_the_one_rule_the_command_uses(char: str) -> None:
    logged = shown(f"cost {char}0.01 USD")
    assert logged.isprintable() and char not in logged
    assert logged == printable(f"cost {char}0.01 USD")  # the log and the `voicefleet` command agree


def test_a_long_value_is_cut_after_escaping() -> None:
    assert shown("x" * 300) == "x" * 200 + "…"
    assert shown("\n" * 10, limit=5) == "\\n\\n\\…"
