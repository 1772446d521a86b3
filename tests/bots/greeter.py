"""Greeter: speaks first (a half-second tone) as soon as the caller connects, then echoes."""

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()], greeting=tone())


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
