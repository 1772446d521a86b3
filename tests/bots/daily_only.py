"""A Daily-only bot in pipecat-examples' shape (travel-companion): its `transport_params` offers `daily` alone."""

from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.daily.transport import DailyParams

transport_params = {
    "daily": lambda: DailyParams(audio_in_enabled=True, audio_out_enabled=True),
}


async def bot(runner_args: RunnerArguments) -> None:
    await create_transport(runner_args, transport_params)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
