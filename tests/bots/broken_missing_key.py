"""Broken: `bot()` reads a service key the bot was not given (set in the shell, not passed on)."""

import os

from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    os.environ["VOICEFLEET_TEST_SERVICE_API_KEY"]


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
