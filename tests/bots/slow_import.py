"""Slow import: 2 s of module-level work (think: a big SDK or a model loaded at import), then a
greeter. A warm host pays this before the session, never during it."""

import time

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params

IMPORT_SECONDS = 2.0
time.sleep(IMPORT_SECONDS)


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()], greeting=tone())


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
