"""A bot project's source is parsed even when CPython 3.11 refuses one parse spuriously."""

from __future__ import annotations

import ast

import pytest

from images import python_source
from images.python_source import parse_python


def test_a_spurious_recursion_depth_mismatch_is_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real, refusals = ast.parse, ["AST constructor recursion depth mismatch (before=174, after=226)"]

    def refusing_once(source: str, filename: str) -> ast.Module:
        if refusals:
            raise SystemError(refusals.pop())
        return real(source, filename=filename)

    monkeypatch.setattr(python_source.ast, "parse", refusing_once)
    assert isinstance(parse_python("import pipecat\n", "bot.py").body[0], ast.Import)


def test_any_other_system_error_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: str, filename: str) -> ast.Module:
        raise SystemError("something else")

    monkeypatch.setattr(python_source.ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        parse_python("x = 1\n", "bot.py")
