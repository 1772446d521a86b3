"""Broken for the host: a script in pipecat-examples' older shape (storytelling-chatbot), a
`main(room_url, token)` its own server runs, and no `bot(runner_args)`."""

import asyncio
import sys

from pipecat.transports.daily.transport import DailyParams, DailyTransport


async def main(room_url: str, token: str) -> None:
    DailyTransport(room_url, token, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
