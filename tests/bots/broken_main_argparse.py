"""Broken for the host: a script in instant-voice's shape, an `argparse` `main()` that takes its room
from the command line, and no `bot(runner_args)`."""

import argparse
import asyncio


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-u", "--url", required=True)
    parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main())
