"""What Python's collector does in a bot host (`python -m bot`, one session per process), over a reserve
bot's idle wait and then its one call: its own collections by generation, the objects it tracks, its memory.

    .venv/bin/python -m bench.bot_garbage [--idle 180] [--call 60]

A real `python -m dispatcher` (MACHINES=local) keeps one reserve bot: voicefleet's own host running
tests/phone/echo_bot.py (Pipecat: it greets, then echoes what it hears), started under bench/gc_probe.py,
which appends a sample every 5 s to a file. The bot waits idle `--idle` seconds; then a carrier's call
(Twilio's protocol, 20 ms frames) lasts `--call` seconds and hangs up. Prints the samples, each marked with
its phase (idle, call, ended). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from bench.dispatcher_garbage import quiet
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import phone_env
from tests.support.processes import run_dispatcher

EVERY_SECONDS = 5.0


def row(sample: dict[str, Any], phase: str) -> str:
    return (f"{sample['uptime_s']:>7.0f} s  {phase:<6}  collections {sample['collections']}  found {sample['found']}"
            f"  count {sample['count']}  tracked {sample['tracked']:>7,}  frozen {sample['frozen']:>7,}"
            f"  RSS {sample['rss_kb'] / 1024:6.1f} MB  malloc {sample['malloc_in_use'] / 1024:8,.0f} KB")


async def call(base_url: str, seconds: float) -> None:
    line = CarrierCall("twilio", base_url.replace("http://", "ws://") + "/ws/twilio")
    await line.open()
    await line.handshake()
    try:
        await line.bot_audio(seconds, timeout=60)  # its greeting, then the caller's silence echoed
    finally:
        with contextlib.suppress(ConnectionClosed):
            await line.hang_up()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=180.0)
    parser.add_argument("--call", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        samples = Path(folder) / "samples.jsonl"
        env = {**phone_env(Path(folder)), "LOG_LEVEL": "warning", "RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "1",
               "LOCAL_BOT_COMMAND": f"{sys.executable} -m bench.gc_probe -m bot",
               "GC_PROBE_FILE": str(samples), "GC_PROBE_EVERY": str(EVERY_SECONDS)}
        env["LOCAL_BOT_ENV"] += ",GC_PROBE_FILE,GC_PROBE_EVERY"
        with run_dispatcher(Path(folder), env) as dispatcher:
            async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as api:
                await quiet(api, 1)
            began = time.time()
            await asyncio.sleep(args.idle)
            call_began = time.time()
            await call(dispatcher.base_url, args.call)
            call_ended = time.time()
            await asyncio.sleep(2 * EVERY_SECONDS)
        lines = [json.loads(line) for line in samples.read_text().splitlines()]
    first_pid = lines[0]["pid"]
    print(f"load average {os.getloadavg()[0]:.1f}; idle {call_began - began:.0f} s, then a call of {args.call:.0f} s "
          f"({call_ended - call_began:.0f} s with its start); one sample every {EVERY_SECONDS:g} s, "
          f"of bot pid {first_pid}")
    for sample in lines:
        if sample["pid"] == first_pid:  # not the bot that refilled the reserve
            at = sample["at"]
            print(row(sample, "idle" if at < call_began else "call" if at < call_ended else "ended"))


if __name__ == "__main__":
    asyncio.run(main())
