"""Echo: plays back what the caller says, as it arrives."""

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, transport_params


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()])


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
