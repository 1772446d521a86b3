"""Phone calls through the dispatcher: first bot audio (warm), added relay latency, CPU per call.

    uv run python -m bench.phone_calls [--runs 7] [--calls 50] [--seconds 20]

Three measurements, each against a real `python -m dispatcher` process (MACHINES=local), with
this process as the carrier (the load generator, Twilio's Media Streams protocol, 20 ms of 8 kHz
μ-law per message) and the bots as their own processes:

1. WebSocket open → first bot audio, warm: a reserve bot running a user bot in Pipecat's shape
   (tests/phone/echo_bot.py: it greets on connect) in voicefleet's own host (`python -m bot`
   with BOT_FILE, the local default's reserve bot, which takes calls too). Median of
   `--runs` calls, each on a freshly refilled reserve.
2. Added relay latency per frame: one call to bench/phone_echo_host.py (echoes every frame, no
   Pipecat), round trip per frame, against the same echo served directly (no dispatcher). The
   relay is crossed twice per round trip (carrier → bot, bot → carrier).
3. CPU per concurrent call: `--calls` calls at once to echo bots, every frame echoed; the
   dispatcher's CPU seconds over `--seconds`, divided by the calls, and the round trips meanwhile.

Prints medians and tails with the load average before and after; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.local_session import proc_usage
from tests.phone.conftest import phone_env, wait_for_idle_bot
from tests.support.processes import free_port, run_dispatcher
from voicefleet.loadtest import twilio

ROOT = Path(__file__).resolve().parents[1]
ECHO_HOST = ROOT / "bench" / "phone_echo_host.py"
SILENCE = b"\xff" * 160  # 20 ms of μ-law silence


def start_messages(call: int) -> list[str]:
    """The carrier's first messages, as `voicefleet loadtest --transport twilio` sends them."""
    return [json.dumps(m) for m in twilio.start_messages(f"CA{call:032d}", f"MZ{call:032d}")]


def media(seq: int) -> str:
    return json.dumps(twilio.media_message("MZ", seq, SILENCE))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values) * 1000:.2f} ms, p99 {pct(values, 0.99) * 1000:.2f} ms (n={len(values)})"


async def first_audio(base_url: str, runs: int) -> list[float]:
    times = []
    ws_url = base_url.replace("http://", "ws://") + "/ws/twilio"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        for run in range(runs):
            await wait_for_idle_bot(api)
            began = time.perf_counter()
            async with connect(ws_url, proxy=None, compression=None) as ws:
                for message in start_messages(run):
                    await ws.send(message)
                sender = asyncio.create_task(_stream(ws, 10_000))
                while json.loads(await ws.recv()).get("event") != "media":
                    pass
                times.append(time.perf_counter() - began)
                sender.cancel()
            await asyncio.sleep(0.5)  # the call's bot exits; the reserve refills
    return times


async def _stream(ws: ClientConnection, frames: int, sent: dict[int, float] | None = None) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for seq in range(3, frames + 3):
        if sent is not None:
            sent[seq] = time.perf_counter()
        await ws.send(media(seq))
        await asyncio.sleep(max(0.0, began + (seq - 2) * 0.02 - loop.time()))


async def echo_call(url: str, call: int, frames: int, rtts: list[float], attached: asyncio.Event | None = None,
                    handshake: bool = True) -> None:
    sent: dict[int, float] = {}
    async with connect(url, proxy=None, compression=None, max_size=2**20) as ws:
        if handshake:
            for message in start_messages(call):
                await ws.send(message)
        sender = asyncio.create_task(_stream(ws, frames, sent))
        try:
            got = 0
            while got < frames:
                message = json.loads(await ws.recv())
                seq = int(message.get("sequenceNumber", 0))
                if message.get("event") == "media" and seq in sent:
                    rtts.append(time.perf_counter() - sent.pop(seq))
                    got += 1
                    if attached is not None:
                        attached.set()
                if sender.done() and not sent:
                    break
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


async def relay_latency(base_url: str, frames: int) -> tuple[list[float], list[float]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
    relayed: list[float] = []
    await echo_call(base_url.replace("http://", "ws://") + "/ws/twilio", 0, frames, relayed)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(ECHO_HOST), "--serve", str(port), stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        await server.stdout.readline()
        direct: list[float] = []
        await echo_call(f"ws://127.0.0.1:{port}", 0, frames, direct)
    finally:
        server.terminate()
        await server.wait()
    return relayed[50:], direct[50:]  # the first second warms both paths up


async def concurrent(base_url: str, dispatcher_pid: int, calls: int, seconds: float) -> dict[str, Any]:
    url = base_url.replace("http://", "ws://") + "/ws/twilio"
    frames = int((seconds + 60) / 0.02)
    rtts: list[float] = []
    attached = [asyncio.Event() for _ in range(calls)]
    tasks = [asyncio.create_task(echo_call(url, i, frames, rtts, attached[i])) for i in range(calls)]
    began = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(a.wait() for a in attached)), 300)
    all_up = time.perf_counter() - began
    await asyncio.sleep(2)  # past the last starts
    rtts.clear()
    _, cpu_before = proc_usage(dispatcher_pid)
    own_before = time.process_time()
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    _, cpu_after = proc_usage(dispatcher_pid)
    own = time.process_time() - own_before
    window = list(rtts)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = cpu_after - cpu_before
    return {"calls": calls, "all_up_s": all_up, "wall_s": wall, "dispatcher_cpu_s": cpu,
            "per_call_pct_of_core": cpu / wall / calls * 100, "frames_per_s": len(window) / wall,
            "loadgen_cpu_pct": own / wall * 100, "rtt": window}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--frames", type=int, default=1000, help="frames (20 ms each) for the latency run")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as logs:
        base = phone_env(Path(logs))
        env = {**base, "RESERVE_MIN_IDLE": "1",  # phone_env: the echo bot under python -m bot
               "LOG_LEVEL": "warning"}
        (Path(logs) / "a").mkdir()
        with run_dispatcher(Path(logs) / "a", env) as dispatcher:
            warm = await first_audio(dispatcher.base_url, args.runs)
        echo = {**base, "LOCAL_BOT_COMMAND": f"{sys.executable} {ECHO_HOST}", "RESERVE_MIN_IDLE": "1",
                "MAX_CONCURRENT_SESSIONS": str(args.calls + 10), "RESERVE_MAX_IDLE": str(args.calls + 10),
                "LOG_LEVEL": "warning"}
        (Path(logs) / "b").mkdir()
        with run_dispatcher(Path(logs) / "b", echo) as dispatcher:
            relayed, direct = await relay_latency(dispatcher.base_url, args.frames)
            load = await concurrent(dispatcher.base_url, dispatcher.process.pid, args.calls, args.seconds)
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores")
    print(f"1. WebSocket open -> first bot audio, warm: {ms(warm)}; each: "
          + ", ".join(f"{t * 1000:.0f}" for t in warm) + " ms")
    print(f"2. round trip per frame through the dispatcher: {ms(relayed)}")
    print(f"   round trip per frame, same echo, direct:      {ms(direct)}")
    added = statistics.median(relayed) - statistics.median(direct)
    print(f"   added by the relay: {added * 1000:.2f} ms per round trip (two crossings), "
          f"{added * 500:.2f} ms per frame per direction")
    print(f"3. {load['calls']} concurrent calls (all up in {load['all_up_s']:.1f} s), {load['wall_s']:.1f} s window: "
          f"dispatcher CPU {load['dispatcher_cpu_s']:.2f} s = {load['per_call_pct_of_core']:.2f}% of one core "
          "per call; "
          f"{load['frames_per_s']:.0f} frames/s echoed; round trip {ms(load['rtt'])}; "
          f"load generator {load['loadgen_cpu_pct']:.0f}% of a core")


if __name__ == "__main__":
    asyncio.run(main())
