"""Late greeter: the greeter (greeter.py), whose greeting comes 3 s after the caller connects — a
release that answers 3 s late (a slower model, a prompt that thinks too long)."""

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from testbot_kit import Echo, run_pipeline, tone, transport_params

LATE_SECONDS = 3.0


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_pipeline(transport, runner_args, [Echo()], greeting=tone(), greeting_delay=LATE_SECONDS)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
