"""The user's bot file: found, imported while the host is warm, and checked for Pipecat's contract.

The contract is Pipecat's own (its development runner and Pipecat Cloud's base image): a Python
file that defines `async def bot(runner_args)`. A file without one whose entry point is a shape
pipecat-examples' own servers run (`run_bot(webrtc_connection)`, `main(room_url, token)`, `main()`)
runs unchanged too, handed what its server would hand it (bot/entry_shapes.py).

The file is imported the way `python bot.py` would see it: its folder first on `sys.path`, so its
sibling modules import as they do under Pipecat's runner, and its folder as the working directory.
It is imported under its own module name (never `__main__`, so its `if __name__ == "__main__":`
block stays unrun).

One optional hook, for what Pipecat has no place for: a module-level `prewarm()` (plain or
`async`, no arguments), called once after the import and before the host reports itself ready,
for work that should be paid before a session rather than during it (loading a model, opening a
pool). A bot without it loses nothing.

Whatever goes wrong here (no such file, a syntax error, an import error, no entry point, a failing
`prewarm()`) is a `BotFileError` whose message names the file and the exception: that message is
what the dispatcher shows in its log, the failed start's answer and the session's `detail`.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bot.entry_shapes import known_entry
from bot.error_advice import way_out
from bot.no_bot_advice import found_instead
from voicefleet_settings.read import setting_text

ENV_BOT_FILE = "BOT_FILE"
# The default: voicefleet's parrot, which talks with no API keys.
DEFAULT_BOT_FILE = Path(__file__).resolve().parents[1] / "examples" / "parrot" / "bot.py"
PREWARM_HOOK = "prewarm"
# The name the user's module is imported under: not `bot` (the host's own package) and not
# `__main__` (whose guarded block starts Pipecat's development runner).
MODULE_NAME = "user_bot"

BotFunction = Callable[[Any], Awaitable[None]]


class BotFileError(Exception):
    """The bot file cannot serve a session; the message names the file and the exception."""


class NoBotError(BotFileError):
    """The file imports but has no `bot`: its own problem, whatever the session's transport."""


@dataclass(frozen=True)
class UserBot:
    path: Path
    module: ModuleType
    bot: BotFunction  # called with the session's runner arguments
    entry: str = "bot()"  # what the session's messages name: `main()` for a file started from its main()
    transport: str | None = None  # the one transport a known entry shape serves; None: what bot() builds


def bot_file_path(env: Mapping[str, str]) -> Path:
    raw = setting_text(env, ENV_BOT_FILE)
    return Path(raw).expanduser().resolve() if raw else DEFAULT_BOT_FILE


def describe(exc: BaseException) -> str:
    """`SyntaxError: invalid syntax (bot.py, line 3)`: the exception's type and its message, and the
    way out where it is a wall every bot author meets (bot/error_advice.py)."""
    message = str(exc)
    said = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    advice = way_out(exc)
    return f"{said} ({advice})" if advice else said


def raised_where(path: Path, exc: BaseException) -> str:
    """`/app/bot.py:604`: the bot file and the line of it the exception last went through (the call
    into Pipecat that refused, say), or the file alone when none of its lines is in the traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{path}:{line}" if line is not None else str(path)


def load_user_bot(path: Path) -> UserBot:
    """Imports the file (with everything it imports at module level) and finds its `bot` (or a known
    entry shape in its place)."""
    if not path.is_file():
        raise BotFileError(f"{path}: no such file (set BOT_FILE to your bot's bot.py)")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise BotFileError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # before running it: its dataclasses look themselves up there
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a module that calls sys.exit() at import is broken too
        sys.modules.pop(MODULE_NAME, None)
        raise BotFileError(f"{path}: importing it failed: {describe(exc)}") from exc
    bot = getattr(module, "bot", None)
    if bot is None and (entry := known_entry(module, path)) is not None:
        return UserBot(path=path, module=module, bot=entry.call, entry=entry.name, transport=entry.transport)
    if bot is None:
        raise NoBotError(f"{path}: defines no `bot` (Pipecat's entry point: async def bot(runner_args))"
                         f"{found_instead(module)}")
    if not inspect.iscoroutinefunction(bot):
        raise BotFileError(f"{path}: `bot` must be an `async def bot(runner_args)`, found {type(bot).__name__}")
    return UserBot(path=path, module=module, bot=bot)


async def prewarm(user_bot: UserBot) -> None:
    """Runs the file's optional `prewarm()` hook; a failure there is the file's failure."""
    hook = getattr(user_bot.module, PREWARM_HOOK, None)
    if hook is None:
        return
    if not callable(hook):
        raise BotFileError(f"{user_bot.path}: `{PREWARM_HOOK}` must be a function")
    try:
        result = hook()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        raise BotFileError(f"{user_bot.path}: {PREWARM_HOOK}() failed: {describe(exc)}") from exc
