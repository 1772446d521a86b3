"""Entry points other than Pipecat's `bot(runner_args)` that the host runs unchanged, found by signature.

Some pipecat-examples scripts were written for a server of their own, not for Pipecat's runner, and
their server hands them what the host already has for the session:

- `async def run_bot(webrtc_connection)` (whatsapp, p2p-webrtc/voice-agent): their server answers the
  SmallWebRTC offer and hands over the connection; here, the connection the host answered, the one
  `SmallWebRTCRunnerArguments` carries.
- `async def main(room_url, token)` (storytelling-chatbot, deployment/flyio-example): their server
  makes a Daily room and passes it; here, the session's room and the bot's token.
- `async def main()` that reads its room from its command line (instant-voice: its server runs
  `python -m single_bot -u ROOM -t TOKEN`), falling back on `DAILY_SAMPLE_ROOM_URL`: both are set to
  the session's room (and token) while it runs. No Daily API call is made for it: the dispatcher made
  the room and the token already, as Pipecat's runner hands its bot the ones it made.

Each is found by its function's name and parameters (`inspect`), never by the file's name; the other
parameters must have defaults. The shapes are bot/entry_shape_table.py's, the table the deploy check
reads too. Each serves one transport: a session of another fails with `WrongSession`, which names the
way (the transport to start, or the `bot(runner_args)` to write).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bot.entry_shape_table import ENTRY_SHAPES, MAIN_COMMAND_LINE, MAIN_ROOM, RUN_BOT, EntryShape

if TYPE_CHECKING:  # imported when a session runs: bot/app.py imports nothing of Pipecat before its config
    from pipecat.runner.types import RunnerArguments

# What instant-voice's and bot-ready-signalling's argparse fall back on without `-u`.
SAMPLE_ROOM_VARIABLE = "DAILY_SAMPLE_ROOM_URL"
_SESSION_KINDS = {
    "DailyRunnerArguments": "Daily's",
    "SmallWebRTCRunnerArguments": "SmallWebRTC's",
    "WebSocketRunnerArguments": "a phone call's",
}
# The runner arguments (pipecat.runner.types) of each transport's sessions.
_RUNNER_ARGUMENTS = {"webrtc": "SmallWebRTCRunnerArguments", "daily": "DailyRunnerArguments"}
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class WrongSession(Exception):
    """The entry point cannot take this session's transport; the message names the way out."""


@dataclass(frozen=True)
class Entry:
    """A known entry point: `call(runner_args)` runs it for a session of `transport`."""

    name: str  # `run_bot(webrtc_connection)`: how the session's messages name what ran
    transport: str  # the one transport it serves ("webrtc", "daily")
    call: Callable[[Any], Awaitable[None]]


def takes(function: object, names: tuple[str, ...]) -> bool:
    """Whether `function` is an `async def` called with `names` as its positional arguments and nothing
    else: those first, in that order, and every other parameter with a default."""
    if not inspect.iscoroutinefunction(function):
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    if tuple(p.name for p in positional[: len(names)]) != names:
        return False
    rest = positional[len(names):] + [p for p in parameters if p.kind == inspect.Parameter.KEYWORD_ONLY]
    return all(p.default is not inspect.Parameter.empty for p in rest)


def known_entry(module: ModuleType, path: Path) -> Entry | None:
    """The file's entry point when it has no `bot` but one of the table's shapes; None otherwise."""
    for shape in ENTRY_SHAPES:
        function = getattr(module, shape.function, None)
        if takes(function, shape.parameters):
            return Entry(shape.entry, shape.transport, _served(shape, function, path))
    return None


def _session_kind(runner_args: object) -> str:
    name = type(runner_args).__name__
    return f"{_SESSION_KINDS.get(name, 'another transport')} ({name})"


def _served(shape: EntryShape, function: Any, path: Path) -> Callable[[Any], Awaitable[None]]:
    """`function` run for a session of its shape's transport, handed what its own server would hand it."""
    hand = _HANDS[shape]

    async def call(runner_args: RunnerArguments) -> None:
        from pipecat.runner import types

        if not isinstance(runner_args, getattr(types, _RUNNER_ARGUMENTS[shape.transport])):
            raise WrongSession(shape.refused(_session_kind(runner_args)))
        await hand(function, runner_args, path)

    return call


async def _hand_connection(run_bot: Any, runner_args: Any, path: Path) -> None:
    await run_bot(runner_args.webrtc_connection)


async def _hand_room(main: Any, runner_args: Any, path: Path) -> None:
    await main(runner_args.room_url, runner_args.token)


async def _hand_command_line(main: Any, runner_args: Any, path: Path) -> None:
    # The command line the examples' servers give it; held in this process only (never in `ps`).
    argv = [str(path), "-u", runner_args.room_url, *(("-t", runner_args.token) if runner_args.token else ())]
    with _command_line(argv), _variable(SAMPLE_ROOM_VARIABLE, runner_args.room_url):
        await main()


# How each shape of the table is called: a shape the host cannot call has no business in the table.
_HANDS: dict[EntryShape, Callable[[Any, Any, Path], Awaitable[None]]] = {
    RUN_BOT: _hand_connection, MAIN_ROOM: _hand_room, MAIN_COMMAND_LINE: _hand_command_line,
}


@contextmanager
def _command_line(argv: list[str]) -> Iterator[None]:
    before = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = before


@contextmanager
def _variable(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
