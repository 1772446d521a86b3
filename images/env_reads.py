"""The environment variables a bot project reads by a literal name, found in its own Python files.

The plan compares them with what a stack gives the bot (stacks/config/bot_env_reads.py), so a key the
team forgot is named at `pulumi preview` instead of as a session's KeyError. Parsed with `ast`, never
run: `os.environ["X"]`, `os.getenv("X")`, `os.environ.get("X")`, and the same through `from os import
environ, getenv` or `import os as …`. A name built at run time (`os.getenv(prefix + "_KEY")`) is not
seen, nor are reads inside installed packages (Pipecat's services take their keys as arguments).
Only the files the image takes are read (images/project_files.py), so `.venv` and ignored files never count.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path

from images.project_files import files
from images.python_source import parse_python


def env_reads(project: Path) -> dict[str, tuple[str, ...]]:
    """Variable name -> where it is read (`bot.py:12`), for every .py file of the project's image."""
    found: dict[str, list[str]] = {}
    for relative, lstat in files(project):
        if not relative.endswith(".py") or not stat.S_ISREG(lstat.st_mode):
            continue
        try:
            tree = parse_python((project / relative).read_text(encoding="utf-8"), relative)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # the image build and the bot's own import report a file Python cannot read
        for name, line in _reads(tree):
            found.setdefault(name, []).append(f"{relative}:{line}")
    return {name: tuple(where) for name, where in sorted(found.items())}


def _reads(tree: ast.Module) -> Iterator[tuple[str, int]]:
    modules, environs, getenvs = {"os"}, set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            environs |= {alias.asname or alias.name for alias in node.names if alias.name == "environ"}
            getenvs |= {alias.asname or alias.name for alias in node.names if alias.name == "getenv"}

    def is_environ(node: ast.expr) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
                and node.value.id in modules) or (isinstance(node, ast.Name) and node.id in environs)

    def is_getenv(node: ast.expr) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "getenv" and isinstance(node.value, ast.Name)
                and node.value.id in modules) or (isinstance(node, ast.Name) and node.id in getenvs)

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            key: ast.expr | None = node.slice
        elif isinstance(node, ast.Call) and node.args and (
                is_getenv(node.func) or (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                                         and is_environ(node.func.value))):
            key = node.args[0]
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield key.value, node.lineno
