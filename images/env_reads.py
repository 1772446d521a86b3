"""The environment variables a bot project reads by a literal name, found in its own Python files.

The plan compares them with what a stack gives the bot (stacks/config/bot_env_reads.py), so a key the
team forgot is named at `pulumi preview` instead of as a session's KeyError. Parsed with `ast`, never
run: `os.environ["X"]`, `os.getenv("X")`, `os.environ.get("X")`, and the same through `from os import
environ, getenv` or `import os as …`. A read with a default (`os.getenv("X", "d")`, `os.environ.get("X",
d)`) is the bot saying it runs without the variable, so it is not one the stack must give. A name built
at run time (`os.getenv(prefix + "_KEY")`) is not seen, nor are reads inside installed packages
(Pipecat's services take their keys as arguments).
Only the files the image takes are read (images/project_files.py), so `.venv` and ignored files never
count; nor do the ones a session never runs: tests (`tests/`, `test_*.py`, `*_test.py`, `conftest.py`)
and `examples/`. The plan parses at most MAX_SOURCE_BYTES of them, so a huge project cannot stall it;
the files past that are named as unread.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from images.project_files import files
from images.python_source import parse_python

# A bot's own code is a few hundred kB: far more is generated or vendored code, which parses slowly.
MAX_SOURCE_BYTES = 20_000_000
NOT_RUN_FOLDERS = frozenset({"tests", "test", "examples"})


@dataclass(frozen=True)
class EnvReads:
    reads: dict[str, tuple[str, ...]]  # variable name -> where it is read without a default (`bot.py:12`)
    unread: tuple[str, ...] = ()  # .py files past MAX_SOURCE_BYTES, not parsed


def run_in_sessions(relative: str) -> bool:
    """A file a bot session may run: not a test, not an example."""
    path = PurePosixPath(relative)
    return not (NOT_RUN_FOLDERS & set(path.parts[:-1]) or path.name == "conftest.py"
                or path.name.startswith("test_") or path.name.endswith("_test.py"))


def env_reads(project: Path, max_bytes: int = MAX_SOURCE_BYTES) -> EnvReads:
    """Every variable the project's image's session code reads without a default, and where."""
    found: dict[str, list[str]] = {}
    unread: list[str] = []
    for relative, lstat in files(project):
        if not relative.endswith(".py") or not stat.S_ISREG(lstat.st_mode) or not run_in_sessions(relative):
            continue
        if lstat.st_size > max_bytes:
            unread.append(relative)
            continue
        max_bytes -= lstat.st_size
        try:
            tree = parse_python((project / relative).read_text(encoding="utf-8"), relative)
        except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError, OSError):
            continue  # the image build and the bot's own import report a file Python cannot read
        for name, line in _reads(tree):
            found.setdefault(name, []).append(f"{relative}:{line}")
    return EnvReads({name: tuple(where) for name, where in sorted(found.items())}, tuple(unread))


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
            if len(node.args) > 1 or any(keyword.arg == "default" for keyword in node.keywords):
                continue  # a default: the bot runs without it
            key = node.args[0]
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield key.value, node.lineno
