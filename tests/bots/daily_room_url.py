"""A Daily-only bot in pipecat-examples' Modal shape: `bot()` hands `runner_args.room_url` and
`runner_args.token` to a `run_bot(room_url, token)` that builds its own `DailyTransport`."""

from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport


async def run_bot(room_url: str, token: str) -> None:
    DailyTransport(room_url, token, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))


async def bot(runner_args: RunnerArguments) -> None:
    await run_bot(runner_args.room_url, runner_args.token)  # type: ignore[attr-defined]


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
