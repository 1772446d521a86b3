"""Slow to exit: the greeter, whose process takes `EXIT_SECONDS` to go once its session is over, as a
bot whose SDK flushes at exit does (an `atexit` handler): its `ended` report comes well before its
machine's end."""

import atexit
import time

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params

EXIT_SECONDS = 6.0

atexit.register(time.sleep, EXIT_SECONDS)


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()], greeting=tone())


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
