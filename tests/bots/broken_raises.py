"""Broken: `bot()` raises as it starts (a bad key, a service that refuses)."""

from pipecat.runner.types import RunnerArguments


class BotConfigurationError(Exception):
    pass


async def bot(runner_args: RunnerArguments) -> None:
    raise BotConfigurationError("the test bot fails on purpose")


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
