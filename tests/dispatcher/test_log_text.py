"""A value someone else chose is logged as one printable line, cut to a readable length."""

from __future__ import annotations

from dispatcher.observability.log_text import _ESCAPES, shown


def test_every_escaped_character_is_non_printable_so_a_printable_value_is_logged_as_it_is() -> None:
    # The fast path returns a short printable value untouched: exact only while every character
    # the table escapes is one `str.isprintable` refuses.
    assert all(not chr(code).isprintable() for code in _ESCAPES)
    assert shown("machine 148e-ab_7 é") == "machine 148e-ab_7 é"


def test_control_characters_and_line_separators_are_escaped() -> None:
    assert shown("a\nforged line\r\t\x00\x85\u2028\u2029\x7f") == "a\\nforged line\\r\\t\\x00\\x85\\u2028\\u2029\\x7f"


def test_a_long_value_is_cut_after_escaping() -> None:
    assert shown("x" * 300) == "x" * 200 + "…"
    assert shown("\n" * 10, limit=5) == "\\n\\n\\…"
