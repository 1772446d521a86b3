"""The environment variables a bot project reads by a literal name, found in its own Python files.

The plan compares them with what a stack gives the bot (stacks/config/bot_env_reads.py), so a key the
team forgot is named at `pulumi preview` instead of as a session's KeyError. Parsed with `ast`, never
run: `os.environ["X"]`, `os.getenv("X")`, `os.environ.get("X")`, and the same through `from os import
environ, getenv` or `import os as …`. A read with a default (`os.getenv("X", "d")`, `os.environ.get("X",
d)`) is the bot saying it runs without the variable, so it is not one the stack must give. A name built
at run time (`os.getenv(prefix + "_KEY")`) is not seen, nor are reads inside installed packages
(Pipecat's services take their keys as arguments).
Only bot.py and the project's own modules it imports, transitively, are read
(images/project_imports.py): a `server.py` or a test the bot never imports runs in no session, so
what it reads is not the bot's. The plan parses at most MAX_SOURCE_BYTES of them, so a huge project
cannot stall it; the files past that, and any one file over images/source_file.py's bound, are named as
unread.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from images.project_imports import own_modules
from images.source_file import MAX_FILE_BYTES

# A bot's own code is a few hundred kB: far more is generated or vendored code, which parses slowly.
MAX_SOURCE_BYTES = 20_000_000


@dataclass(frozen=True)
class EnvReads:
    reads: dict[str, tuple[str, ...]]  # variable name -> where it is read without a default (`bot.py:12`)
    unread: tuple[str, ...] = ()  # .py files past MAX_SOURCE_BYTES, not parsed
    every: frozenset[str] = frozenset()  # every name read, with a default or without
    # name -> where an `if` on it decides what the module imports (`if os.getenv("ENV") != "local": import …`):
    # unset, the bot takes that branch, imports and all, whatever the stack accepts
    imports_by: dict[str, tuple[str, ...]] = field(default_factory=dict)


def env_reads(project: Path, max_bytes: int = MAX_SOURCE_BYTES, entry: str = "bot.py") -> EnvReads:
    """Every variable the bot and the project's modules it imports read without a default, and where."""
    found: dict[str, list[str]] = {}
    every: set[str] = set()
    guards: dict[str, list[str]] = {}
    unread: list[str] = []
    budget = max_bytes

    def past_budget(path: Path) -> bool:
        nonlocal budget
        try:
            size = path.stat().st_size
        except OSError:
            return True  # gone or unreadable: the image build reports it
        if size > min(budget, MAX_FILE_BYTES):  # past the budget, or more than one file is read of
            unread.append(path.relative_to(project).as_posix())
            return True
        budget -= size
        return False

    for path, tree in own_modules(project, entry, max_bytes=max_bytes, skip=past_budget):
        relative = path.relative_to(project).as_posix()
        for name, line, defaulted in _reads(tree):
            every.add(name)
            if not defaulted:
                found.setdefault(name, []).append(f"{relative}:{line}")
        for test in _import_guards(tree):
            for name, line, _ in _reads(tree, within=test):
                guards.setdefault(name, []).append(f"{relative}:{line}")
    return EnvReads({name: tuple(where) for name, where in sorted(found.items())}, tuple(unread), frozenset(every),
                    {name: tuple(where) for name, where in sorted(guards.items())})


def _import_guards(tree: ast.Module) -> Iterator[ast.expr]:
    """The test of each `if` whose branches import a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and any(isinstance(inner, ast.Import | ast.ImportFrom)
                                            for branch in (node.body, node.orelse) for statement in branch
                                            for inner in ast.walk(statement)):
            yield node.test


def _reads(tree: ast.Module, within: ast.AST | None = None) -> Iterator[tuple[str, int, bool]]:
    """(name, line, read with a default) of each literal read, in `tree` or only `within` a part of it."""
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

    for node in ast.walk(tree if within is None else within):
        defaulted = False
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            key: ast.expr | None = node.slice
        elif isinstance(node, ast.Call) and node.args and (
                is_getenv(node.func) or (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                                         and is_environ(node.func.value))):
            # a default: the bot runs without it
            defaulted = len(node.args) > 1 or any(keyword.arg == "default" for keyword in node.keywords)
            key = node.args[0]
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield key.value, node.lineno, defaulted
