"""Broken: `bot()` builds Pipecat's Krisp filter, which only Pipecat Cloud's base image can load
(pipecat-examples' Pipecat Cloud bots do unless ENV=local)."""

import os

from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    if os.environ.get("ENV") != "local":
        from pipecat.audio.filters.krisp_viva_filter import KrispVivaFilter

        KrispVivaFilter()


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
