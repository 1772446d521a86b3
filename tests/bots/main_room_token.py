"""A script in pipecat-examples' storytelling-chatbot shape: its own server makes a Daily room and runs
`main(room_url, token)`, which builds its own `DailyTransport`; no `bot(runner_args)`."""

import argparse
import asyncio

from pipecat.transports.daily.transport import DailyParams, DailyTransport
from testbot_kit import Echo, record, run_pipeline


async def main(room_url: str, token: str | None = None) -> None:
    record({"room_url": room_url, "token": token})
    transport = DailyTransport(room_url, token, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    await run_pipeline(transport, None, [Echo()])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-u", type=str, help="Room URL")
    parser.add_argument("-t", type=str, help="Token")
    config = parser.parse_args()
    asyncio.run(main(config.u, config.t))
