"""What a bot file that defines no `bot` has instead, and the way to the entry point from there.

Many pipecat-examples scripts predate Pipecat's `async def bot(runner_args)`. The shapes their own
servers start, the host runs as they are (bot/entry_shapes.py); the others come here: a `main` or a
`run_bot` with other parameters (deployment/modal-example's `run_bot(room_url, token)`,
local-input-select-stt's `main(input_device, output_device)`), or a plain `def`. Saying only
"defines no `bot`" leaves the author guessing which of their functions to wrap and how; the detail
names the function found, with its signature, and the wrapper (RECIPE, a section
tests/bot/test_user_bots.py finds in that page).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType

RECIPE = 'docs/from-pipecat-examples.md, "A bot whose entry point is main() or main(room_url, token)"'
_ROOM_AND_TOKEN = ("room_url", "token")
_ENTRY_NAMES = ("main", "run_bot")  # what scripts started by their own servers call their entry point


def found_instead(module: ModuleType) -> str:
    """`; it has async def run_bot(room_url: str, token: str): …` (the way out), or "" without a
    `main` or a `run_bot`."""
    for name in _ENTRY_NAMES:
        function = getattr(module, name, None)
        if callable(function):
            return _way_from(name, function)
    return ""


def _way_from(name: str, function: Callable[..., object]) -> str:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or a C callable: nothing to show
        return ""
    kind = "async def" if inspect.iscoroutinefunction(function) else "def"
    found = f"; it has `{kind} {name}{signature}`"
    names = tuple(signature.parameters)
    if names[:2] == _ROOM_AND_TOKEN:
        call = f"{name}(runner_args.room_url, runner_args.token)"
        call = f"await {call}" if kind == "async def" else call
        return f"{found}: add `async def bot(runner_args): {call}` ({RECIPE})"
    return (
        f"{found}: move its body into `async def bot(runner_args)`, taking the room and the bot's token from "
        f"runner_args.room_url and runner_args.token in place of its arguments or argparse ({RECIPE})"
    )
