"""Parsing a bot project's Python source, as the image plan reads it (its imports, its transports)."""

from __future__ import annotations

import ast
from pathlib import Path

from images.source_file import read_source

# CPython 3.11 keeps the AST constructor's recursion count per interpreter, not per thread: a parse
# while another thread parses can be refused with a spurious "AST constructor recursion depth
# mismatch" (python/cpython#106905; seen here under Pulumi's mocks). The count is reset at each parse,
# so the same parse again succeeds.
AST_MISMATCH_RETRIES = 3


def parse_python(source: str | bytes, filename: str) -> ast.Module:
    """The module's syntax tree; bytes are decoded as Python imports them (a BOM, a coding line)."""
    for attempt in range(AST_MISMATCH_RETRIES):
        try:
            return ast.parse(source, filename=filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == AST_MISMATCH_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def parse_file(path: Path, project: Path) -> ast.Module | None:
    """The syntax tree of `path`, a file of the project at `project`; None when it cannot be read or
    parsed (the image build reports that with Python's own message). SourceRefused (images/source_file.py)
    for a file the check will not read: a link out of the project, no regular file, too large."""
    try:
        return parse_python(read_source(path, project), str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
