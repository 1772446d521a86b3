"""Broken: `bot()` returns at once, without ever running a pipeline."""

from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    return None


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
