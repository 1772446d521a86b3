"""A phone call's frames through the store between two replicas vs the direct relay, per frame.

    uv run --all-groups python -m bench.phone_store_hop [--frames 1000] [--calls 20] [--seconds 20]

Each arm echoes Twilio media frames (20 ms of 8 kHz μ-law per message) through real processes:
this process is the carrier (the load generator); bench/phone_echo_host.py is the bot (echoes
every frame verbatim, no Pipecat); dispatchers are `python -m dispatcher` (MACHINES=local) and
the store Debian's `redis-server`, each a process of its own.

- direct: the echo served with no dispatcher at all (the baseline);
- one replica: the carrier and the bot's media socket at the same dispatcher (no store hop);
- store hop: the carrier at replica A, the bot's channel and media socket at replica B (its
  BOT_CHANNEL_URL points there), every frame crossing the store twice per round trip
  (A → redis → B → bot, bot → B → redis → A).

Round trip per frame: median and p95 after the first 50 frames. Then `--calls` calls at once,
through one replica and through the store hop: CPU seconds of each dispatcher (and of
redis-server) over `--seconds`, per call, and the PUBLISHes the store ran per relayed call and
second (what ElastiCache Serverless meters in ECPUs: stacks/config/store_capacity.py). Prints
the load average before and after; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.local_session import proc_usage
from bench.phone_calls import ECHO_HOST, echo_call, pct
from botchannel.contract import CHANNEL_PATH
from tests.phone.conftest import phone_env
from tests.support.processes import free_port, run_dispatcher
from tests.support.redis_server import RedisServer

WARMUP = 50


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values) * 1000:.2f} ms, p95 {pct(values, 0.95) * 1000:.2f} ms, "
            f"p99 {pct(values, 0.99) * 1000:.2f} ms (n={len(values)})")


async def one_call(base_url: str, frames: int) -> list[float]:
    rtts: list[float] = []
    await echo_call(base_url.replace("http://", "ws://") + "/ws/twilio", 0, frames, rtts)
    return rtts[WARMUP:]


async def direct(frames: int) -> list[float]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, str(ECHO_HOST), "--serve", str(port),
                                                  stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        await server.stdout.readline()
        rtts: list[float] = []
        await echo_call(f"ws://127.0.0.1:{port}", 0, frames, rtts)
        return rtts[WARMUP:]
    finally:
        server.terminate()
        await server.wait()


def publishes(store: RedisServer | None) -> int:
    if store is None:
        return 0
    with store.admin() as admin:
        return int(admin.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))


async def concurrent(base_url: str, pids: dict[str, int], calls: int, seconds: float,
                     store: RedisServer | None = None) -> dict[str, Any]:
    url = base_url.replace("http://", "ws://") + "/ws/twilio"
    frames = int((seconds + 120) / 0.02)
    rtts: list[float] = []
    attached = [asyncio.Event() for _ in range(calls)]
    tasks = [asyncio.create_task(echo_call(url, i, frames, rtts, attached[i])) for i in range(calls)]
    await asyncio.wait_for(asyncio.gather(*(a.wait() for a in attached)), 300)
    await asyncio.sleep(2)  # past the last starts
    rtts.clear()
    before = {name: proc_usage(pid)[1] for name, pid in pids.items()}
    published = publishes(store)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    published = publishes(store) - published
    cpu = {name: proc_usage(pid)[1] - before[name] for name, pid in pids.items()}
    window = list(rtts)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"wall": wall, "cpu": cpu, "rtt": window, "frames_per_s": len(window) / wall,
            "publishes_per_call_s": published / wall / calls}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000, help="frames (20 ms each) per latency call")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        echo_bot = shlex.join([sys.executable, str(ECHO_HOST)])
        common = {**phone_env(root), "LOG_LEVEL": "warning", "MAX_CONCURRENT_SESSIONS": str(args.calls * 3 + 10),
                  "START_RATE_PER_KEY": "1000", "START_BURST_PER_KEY": str(args.calls + 10),  # all calls at once
                  "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0"}  # every call's echo bot launched cold
        for name in ("one", "a", "b"):
            (root / name).mkdir()
        with run_dispatcher(root / "one", {**common, "LOCAL_BOT_COMMAND": echo_bot}) as one:
            same = await one_call(one.base_url, args.frames)
            alone = await concurrent(one.base_url, {"one replica": one.process.pid}, args.calls, args.seconds)
        store = RedisServer(root)
        store.start()
        stack.callback(store.stop)
        shared = {**common, **store.env, "BOT_CHANNEL_TOKEN": "bench-store-hop-deployment-secret-0123",
                  "REDIS_TIMEOUT_SECONDS": "2"}  # a busy 2-core host stalls for longer than the default 0.5 s
        b = stack.enter_context(run_dispatcher(root / "b", {**shared, "REPLICA_ID": "r-b"}))
        channel_b = b.base_url.replace("http://", "ws://") + CHANNEL_PATH
        a = stack.enter_context(run_dispatcher(root / "a", {
            **shared, "REPLICA_ID": "r-a",
            "LOCAL_BOT_COMMAND": shlex.join(["env", f"BOT_CHANNEL_URL={channel_b}", sys.executable, str(ECHO_HOST)]),
        }))
        hopped = await one_call(a.base_url, args.frames)
        baseline = await direct(args.frames)
        assert store.process is not None
        load = await concurrent(a.base_url, {"A": a.process.pid, "B": b.process.pid, "redis": store.process.pid},
                                args.calls, args.seconds, store)
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores")
    print(f"direct echo, no dispatcher:              {summary(baseline)}")
    print(f"one replica (carrier and bot media here): {summary(same)}")
    print(f"store hop (carrier at A, bot media at B): {summary(hopped)}")
    hop = statistics.median(hopped) - statistics.median(same)
    hop95 = pct(hopped, 0.95) - pct(same, 0.95)
    print(f"added by the store hop vs one replica: {hop * 1000:.2f} ms per round trip median "
          f"({hop * 500:.2f} ms per frame per direction), p95 {hop95 * 1000:.2f} ms per round trip")
    for what, result in (("one replica", alone), ("through the store hop", load)):
        wall, cpu = result["wall"], result["cpu"]
        per_call = {name: seconds / wall / args.calls * 100 for name, seconds in cpu.items()}
        print(f"{args.calls} concurrent calls, {what}, {wall:.1f} s window, "
              f"{result['frames_per_s']:.0f} frames/s echoed; CPU per call (% of one core): "
              + ", ".join(f"{name} {value:.2f}" for name, value in per_call.items())
              + f", total {sum(per_call.values()):.2f}; round trip {summary(result['rtt'])}")
    print(f"PUBLISH per relayed call: {load['publishes_per_call_s']:.1f}/s")


if __name__ == "__main__":
    asyncio.run(main())
