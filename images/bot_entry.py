"""Whether bot.py defines Pipecat's entry point, `bot`, read from its source (never run) at plan time.

The bot host imports bot.py and calls its `bot(runner_args)` (Pipecat's runner contract); a file
without one (a pipecat-examples script with `main()` and argparse) would pass the plan and the image
build and fail at its first session. `bot` counts when a top-level statement binds the name: a
`def`/`async def`, an import (`from pipeline import bot`, `… import run as bot`), an assignment; also
inside a top-level `if`/`try`/`with`, which run at import. A `from x import *` may bind it, and a file
Python cannot parse is reported by the build with Python's own message: neither is refused here.
A file without `bot` whose top level has one of the entry points the bot host runs unchanged
(bot/entry_shape_table.py: `async def run_bot(webrtc_connection)`, `async def main(room_url, token)`,
`async def main()`, each other parameter with a default) is accepted: `known_shape` reads the same
table here in the source, as the host reads it in the imported function (bot/entry_shapes.py).

The source is a user's, read on the deploying machine: it is read once, bounded, and only inside the
project (images/source_file.py), and what is quoted from it back is bounded too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from bot.entry_shape_table import ENTRY_SHAPES
from images.python_source import parse_file

ENTRY_POINT = "bot"
CONTRACT = "async def bot(runner_args)"
# What the refusal quotes of a script's `main` signature at most: a default may be any expression.
MAX_SHOWN_SIGNATURE = 200


def bot_tree(path: Path) -> ast.Module | None:
    """bot.py's syntax tree for the checks below; None when it cannot be read or parsed (the build
    reports that). SourceRefused (images/source_file.py) for a file the check will not read."""
    return parse_file(path, path.parent)


def lacks_bot(tree: ast.Module | None) -> bool:
    """True only when bot.py parses and surely binds no top-level `bot`."""
    if tree is None:
        return False
    return not any(name in (ENTRY_POINT, "*") for name in _bound(tree.body))


def _bound(statements: list[ast.stmt]) -> Iterator[str]:
    """The names top-level statements bind ("*" for a star import), entering the blocks that run at import."""
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield statement.name
        elif isinstance(statement, ast.Import):
            yield from ((alias.asname or alias.name).split(".")[0] for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            yield from (alias.asname or alias.name for alias in statement.names)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            yield from (node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name))
        elif isinstance(statement, (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            yield from _bound([*statement.body, *getattr(statement, "orelse", [])])
        elif isinstance(statement, ast.Try):
            yield from _bound([*statement.body, *statement.orelse, *statement.finalbody,
                               *(line for handler in statement.handlers for line in handler.body)])


def known_shape(tree: ast.Module | None) -> tuple[str, str] | None:
    """(`run_bot(webrtc_connection)`, `webrtc`): the entry point the host runs unchanged in a file
    without `bot`, and the transport it serves; None when it has none (or does not parse)."""
    if tree is None:
        return None
    defined = {statement.name: statement for statement in tree.body if isinstance(statement, ast.AsyncFunctionDef)}
    for shape in ENTRY_SHAPES:
        if (function := defined.get(shape.function)) is not None and _takes(function.args, shape.parameters):
            return shape.entry, shape.transport
    return None


def _takes(args: ast.arguments, first: tuple[str, ...]) -> bool:
    """Called with `first` as its positional arguments and nothing else (every other one defaulted)."""
    positional = [*args.posonlyargs, *args.args]
    if tuple(arg.arg for arg in positional[: len(first)]) != first:
        return False
    undefaulted = len(positional) - len(args.defaults)  # defaults belong to the last positional ones
    kw_undefaulted = sum(default is None for default in args.kw_defaults)
    return undefaulted <= len(first) and kw_undefaulted == 0


def main_found(tree: ast.Module | None) -> str | None:
    """`async def main(room_url: str, token: str)`: the script's top-level `main`, as written, for the
    refusal of a file with no `bot` (what to wrap); None without one or when the file does not parse."""
    for statement in tree.body if tree is not None else []:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == "main":
            kind = "async def" if isinstance(statement, ast.AsyncFunctionDef) else "def"
            return f"{kind} main({_shown(statement.args)})"
    return None


def _shown(args: ast.arguments) -> str:
    """The parameters as written, cut short: a default nested deeper than `ast.unparse` recurses is
    named by the parameters alone."""
    try:
        written = ast.unparse(args)
    except RecursionError:
        written = ", ".join(arg.arg for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs])
    return written if len(written) <= MAX_SHOWN_SIGNATURE else f"{written[:MAX_SHOWN_SIGNATURE]}…"
