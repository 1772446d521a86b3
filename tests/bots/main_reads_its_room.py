"""A script in pipecat-examples' instant-voice shape: an argument-less `main()` that reads its room from
its command line (`-u ROOM -t TOKEN`, which its own server passes), else `DAILY_SAMPLE_ROOM_URL`, and
builds its own `DailyTransport`; no `bot(runner_args)`."""

import argparse
import asyncio
import os

from pipecat.transports.daily.transport import DailyParams, DailyTransport
from testbot_kit import Echo, record, run_pipeline


def extract_arguments() -> tuple[str, str | None]:
    parser = argparse.ArgumentParser(description="Instant Voice Example")
    parser.add_argument("-u", "--url", type=str, required=True, help="URL of the Daily room to join")
    parser.add_argument("-t", "--token", type=str, required=False, help="Token of the Daily room to join")
    args, unknown = parser.parse_known_args()
    return args.url or os.getenv("DAILY_SAMPLE_ROOM_URL"), args.token


async def main() -> None:
    room_url, token = extract_arguments()
    record({"room_url": room_url, "token": token, "sample_room": os.getenv("DAILY_SAMPLE_ROOM_URL")})
    transport = DailyTransport(room_url, token, "bot", DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    await run_pipeline(transport, None, [Echo()])


if __name__ == "__main__":
    asyncio.run(main())
