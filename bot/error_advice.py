"""The way out of the two walls a bot author meets first, added to the error the session reports.

- A module the bot's interpreter lacks: the package belongs in the project's own dependencies, and
  a local dispatcher runs bots with its own Python unless `BOT_PYTHON` names the project's.
- A `KeyError` on a variable's name that is not in the bot's environment: a bot gets only what it
  is given (`LOCAL_BOT_ENV` locally, the stack's `botSecrets` in the cloud), so a key set in the
  developer's shell is not enough.
- Krisp (`krisp_audio`): Pipecat Cloud's base image has it; PyPI does not, so `uv add` is no way
  out; pipecat-examples' bots import it unless `ENV=local`.
- `input()` at EOF: a bot has no terminal (its stdin is closed, locally and in the cloud), so a
  question a script asks at its start (pipecat-examples' studypal asks for an article's URL) reads
  nothing; the value belongs in the client's `POST /start` body or the bot's environment.
- A `SystemExit` while it runs: a script started from its `main()` (bot/entry_shapes.py) whose
  argparse wants more than the room and token its server would pass.
- A Daily-only bot given a SmallWebRTC session: bot/transport_advice.py.
A transport's own missing package is named by bot/missing_extra.py (a Pipecat extra), not here.
"""

from __future__ import annotations

import linecache
import os
import re

from bot.transport_advice import daily_only_way_out

_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


def way_out(exc: BaseException) -> str | None:
    """Short: the session's `detail` holds the file, the error and this within 500 characters."""
    if _krisp_missing(exc):
        return ("Krisp's SDK ships only in Pipecat Cloud's base image, under its licence, not on PyPI: drop the "
                "Krisp filter from the bot, or set the switch your bot skips it with (pipecat-examples' bots: "
                "ENV=local, passed with LOCAL_BOT_ENV=ENV locally, botSecrets.ENV on a stack)")
    missing = _module_missing(exc)
    if missing is not None:
        extra = _pipecat_service(exc)
        package = f"pipecat-ai[{extra}]" if extra else "its package"
        return (f"add {package} to your project (uv add …) and run bots with the project's Python: "
                "BOT_PYTHON=path/to/.venv/bin/python for a local dispatcher")
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        name = exc.args[0]
        if isinstance(name, str) and _VARIABLE.fullmatch(name) and name not in os.environ:
            return (f"{name} is not in the bot's environment: pass it with LOCAL_BOT_ENV={name} to a local "
                    f"dispatcher, or set botSecrets.{name} on a stack")
    if isinstance(exc, EOFError) and _raised_by_input(exc):
        return ("input() asks the terminal, and a bot has none (its stdin is closed): take the value from "
                "the client's POST /start body (runner_args.body) or an environment variable")
    if isinstance(exc, SystemExit):
        return ("a script's exit: sys.exit(), or argparse refusing its command line (its message is in the "
                "session's log); a main() is given -u ROOM -t TOKEN alone: take other values from the environment")
    return daily_only_way_out(exc)


def _module_missing(exc: BaseException) -> ModuleNotFoundError | None:
    """The missing module behind `exc`: itself, or the cause of an ImportError Pipecat's services
    raise in its place (`ImportError: Missing module: No module named 'google.genai'`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            return seen
        if not isinstance(seen, ImportError):
            return None
        seen = seen.__cause__ or seen.__context__
    return None


_SERVICE = re.compile(r"[/\\]pipecat[/\\]services[/\\]([a-z0-9_]+)[/\\]")


def _pipecat_service(exc: BaseException) -> str | None:
    """The Pipecat extra named by the service module that raised (pipecat/services/google/… → google),
    as its own log line asks for `pipecat-ai[google]`; None when the import was not a Pipecat service's."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        match = _SERVICE.search(tb.tb_frame.f_code.co_filename)
        found = match.group(1).replace("_", "-") if match else found
        tb = tb.tb_next
    return found


def _krisp_missing(exc: BaseException) -> bool:
    """Pipecat's Krisp classes re-raise the missing `krisp_audio` as a plain ImportError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and (seen.name or "").split(".")[0] == "krisp_audio":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _raised_by_input(exc: EOFError) -> bool:
    """Whether the innermost Python frame's line calls `input(` (a builtin: no frame of its own)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    # Otherwise an EOFError of the bot's own (a closed pipe, a parser): no advice.
    return "input(" in linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
