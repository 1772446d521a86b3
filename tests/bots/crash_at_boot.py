"""Broken: the process dies as the bot file is loaded, before its host can report anything (a native
crash, an out-of-memory kill, an image whose entrypoint exits at once)."""

import os

os._exit(1)


async def bot(runner_args: object) -> None:  # never reached
    pass
