"""Local voice sessions through the dispatcher, measured end to end (real bot, real WebRTC, real speech).

    uv run python -m bench.local_session --runs 5

For each run: POST /start?wait=started (a cold bot process: spawn → imports → VAD → ready),
connect through the dispatcher's offer proxy with an aiortc client, speak the fixture, and
record connect → first bot audio, end of speech → first bot audio, and the bot's peak RSS and
CPU time over the session (from /proc). Prints medians with min–max; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.processes import children_of, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

SPEECH = Path(__file__).parents[1] / "tests" / "fixtures" / "speech16k.wav"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a live process."""
    with open(f"/proc/{pid}/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().split(") ", 1)[1].split()
    return hwm_kb / 1024, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def one_session(base_url: str, dispatcher_pid: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
        began = time.monotonic()
        response = await api.post("/start?wait=started", json={})
        ready = time.monotonic() - began
        response.raise_for_status()
        session = response.json()
        (bot,) = children_of(dispatcher_pid)
        _, cpu_at_ready = proc_usage(bot)
        talk_began = time.monotonic()
        async with WebRTCClient(base_url + session["offer_url"]) as client:
            result = await client.talk(SPEECH, listen_seconds=2.5)
            rss, cpu = proc_usage(bot)
        seconds = time.monotonic() - talk_began
        await api.delete(f"/sessions/{session['session_id']}")
    if result.connect_to_first_audio is None or result.reply_latency is None:
        raise RuntimeError(f"no reply: {result.summary()}")
    return {
        "start_to_ready_s": ready,
        "connect_to_first_audio_ms": result.connect_to_first_audio * 1000,
        "speech_end_to_reply_ms": result.reply_latency * 1000,
        "bot_peak_rss_mib": rss,
        "bot_cpu_pct_of_one_core": 100 * (cpu - cpu_at_ready) / seconds,
    }


def report(rows: list[dict[str, float]]) -> None:
    print(f"{'metric':32} {'median':>9} {'min':>9} {'max':>9}   n={len(rows)}")
    for key in rows[0]:
        values = [row[key] for row in rows]
        print(f"{key:32} {statistics.median(values):9.2f} {min(values):9.2f} {max(values):9.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs, run_dispatcher(Path(logs)) as dispatcher:
        rows = []
        for _ in range(args.runs):
            rows.append(await one_session(dispatcher.base_url, dispatcher.process.pid))
            await asyncio.sleep(0.5)  # let the previous bot exit before the next cold start
    report(rows)


if __name__ == "__main__":
    asyncio.run(main())
