"""Broken: `bot()` logs why it cannot run and returns, as a bot missing a setting in its body does."""

from loguru import logger
from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    logger.info("starting")
    logger.error("Phone number is required in dialout_settings.")
    return None


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
