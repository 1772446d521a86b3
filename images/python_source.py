"""Parsing a bot project's Python source, as the image plan reads it (its imports, its transports)."""

from __future__ import annotations

import ast

# CPython 3.11 keeps the AST constructor's recursion count per interpreter, not per thread: a parse
# while another thread parses can be refused with a spurious "AST constructor recursion depth
# mismatch" (python/cpython#106905; seen here under Pulumi's mocks). The count is reset at each parse,
# so the same parse again succeeds.
AST_MISMATCH_RETRIES = 3


def parse_python(source: str, filename: str) -> ast.Module:
    for attempt in range(AST_MISMATCH_RETRIES):
        try:
            return ast.parse(source, filename=filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == AST_MISMATCH_RETRIES - 1:
                raise
    raise AssertionError("unreachable")
