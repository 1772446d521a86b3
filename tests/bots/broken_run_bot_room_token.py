"""Broken for the host: a script in pipecat-examples' Modal shape, `run_bot(room_url, token)` that its
own server awaits, and no `bot(runner_args)`: not a shape the host runs, so it names the wrapper."""

from pipecat.transports.daily.transport import DailyParams, DailyTransport


async def run_bot(room_url: str, token: str) -> None:
    DailyTransport(room_url, token, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))
