"""What a bot file that defines no `bot` has instead, and the way to the entry point from there.

Many pipecat-examples scripts predate Pipecat's `async def bot(runner_args)`: a `main(room_url, token)`
(storytelling-chatbot, bot-ready-signalling's helpers), or an `argparse` `main()` that makes its own
room (instant-voice's `single_bot.py`). Saying only "defines no `bot`" leaves the author guessing
which of their functions to wrap and how; the detail names the `main` found, with its signature,
and the wrapper (RECIPE, a section tests/bot/test_user_bots.py finds in that page).
"""

from __future__ import annotations

import inspect
from types import ModuleType

RECIPE = 'docs/from-pipecat-examples.md, "A bot whose entry point is main() or main(room_url, token)"'
_ROOM_AND_TOKEN = ("room_url", "token")


def found_instead(module: ModuleType) -> str:
    """`; it has async def main(room_url: str, token: str): …` (the way out), or "" without a `main`."""
    main = getattr(module, "main", None)
    if not callable(main):
        return ""
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):  # a builtin or a C callable: nothing to show
        return ""
    kind = "async def" if inspect.iscoroutinefunction(main) else "def"
    found = f"; it has `{kind} main{signature}`"
    names = tuple(signature.parameters)
    if names[:2] == _ROOM_AND_TOKEN or len(names) == 2:
        call = "main(runner_args.room_url, runner_args.token)"
        call = f"await {call}" if kind == "async def" else call
        return f"{found}: add `async def bot(runner_args): {call}` ({RECIPE})"
    return (
        f"{found}: move its body into `async def bot(runner_args)`, taking the room and the bot's token from "
        f"runner_args.room_url and runner_args.token in place of its arguments or argparse ({RECIPE})"
    )
