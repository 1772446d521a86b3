"""Broken: imports a module that is not installed (a dependency missing from the image)."""

import voicefleet_test_module_that_does_not_exist  # noqa: F401
from pipecat.runner.types import RunnerArguments


async def bot(runner_args: RunnerArguments) -> None:
    pass


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
