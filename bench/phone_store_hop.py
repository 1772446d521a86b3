"""A phone call's frames through the store between two replicas vs the direct relay, per frame.

    uv run --all-groups python -m bench.phone_store_hop [--frames 1000] [--calls 20] [--seconds 20] \
        [--seal-frames 20000]

Each arm echoes Twilio media frames (20 ms of 8 kHz μ-law per message) through real processes:
this process is the carrier (the load generator); bench/phone_echo_host.py is the bot (echoes
every frame verbatim, no Pipecat); dispatchers are `python -m dispatcher` (MACHINES=local) and
the store Debian's `redis-server`, each a process of its own.

- direct: the echo served with no dispatcher at all (the baseline);
- one replica: the carrier and the bot's media socket at the same dispatcher (no store hop);
- store hop: the carrier at replica A, the bot's channel and media socket at replica B (its
  BOT_CHANNEL_URL points there), every frame crossing the store twice per round trip
  (A → redis → B → bot, bot → B → redis → A).

The dispatchers run as production does: with API keys (each call is placed with `POST /start`
and dials its one-time `{wsUrl}/{token}`, as a Twilio Function would), and the two store replicas
sign in as the AWS stack's store user with its access string (tests/support/redis_server.py),
signing and encrypting what they relay with `REDIS_MESSAGE_SECRET`
(dispatcher/store/message_seal.py). A store that refused them anything ends the run: a fallback
would measure something else.

The seal's own cost per frame (HMAC-SHA256 and AES-GCM over a real Twilio media message, as the
media bus seals it: conceal, then seal; at the other replica, open, then reveal) is measured on
its own first, over `--seal-frames` frames, and set against the store hop's CPU per call.

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
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.local_session import proc_usage
from bench.phone_calls import ECHO_HOST, echo_call, media, pct
from botchannel.contract import CHANNEL_PATH
from dispatcher.store.media_bus import TEXT
from dispatcher.store.message_seal import MessageSeal
from tests.phone.conftest import phone_env
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer

WARMUP = 50
API_KEY = secrets.token_urlsafe(24)  # DISPATCHER_API_KEYS: a store's replicas refuse to start without keys
FRAMES_PER_SECOND = 50  # one Twilio media message per 20 ms, each way


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values) * 1000:.2f} ms, p95 {pct(values, 0.95) * 1000:.2f} ms, "
            f"p99 {pct(values, 0.99) * 1000:.2f} ms (n={len(values)})")


async def call_url(base_url: str) -> str:
    """Where one call dials: `{wsUrl}/{token}` from `POST /start`, asked with the API key."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        answer = await api.post("/start", json={"transport": "twilio"})
    if answer.status_code != 201:
        raise RuntimeError(f"POST /start refused the call: {answer.status_code} {answer.text}")
    start = answer.json()
    return f"{start['wsUrl']}/{start['token']}"


async def one_call(base_url: str, frames: int) -> list[float]:
    rtts: list[float] = []
    await echo_call(await call_url(base_url), 0, frames, rtts)
    return rtts[WARMUP:]


def seal_cost(frames: int) -> tuple[float, float]:
    """Seconds per frame to seal one at the sending replica and to open it at the receiving one,
    with the media bus's steps (conceal, seal; open, reveal) over a real Twilio media message
    addressed to a session as the bus addresses it (length, id, kind, message)."""
    secret = secrets.token_urlsafe(32)
    sender, receiver = MessageSeal(secret), MessageSeal(secret)
    channel = "{voicefleet}:media:r-b"
    session_id = secrets.token_hex(16).encode()
    bodies = [bytes([len(session_id)]) + session_id + TEXT + media(seq).encode() for seq in range(frames)]
    t0 = time.perf_counter()
    sealed = [sender.seal(channel, sender.conceal(channel, body)) for body in bodies]
    t1 = time.perf_counter()
    opened = [receiver.reveal(channel, "media", receiver.open(channel, "media", message) or b"") for message in sealed]
    t2 = time.perf_counter()
    if opened != bodies:
        raise RuntimeError("the seal did not give back what it sealed")
    return (t1 - t0) / frames, (t2 - t1) / frames


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
    urls = [await call_url(base_url) for _ in range(calls)]  # one token each: a token opens one call
    frames = int((seconds + 120) / 0.02)
    rtts: list[float] = []
    attached = [asyncio.Event() for _ in range(calls)]
    tasks = [asyncio.create_task(echo_call(urls[i], i, frames, rtts, attached[i])) for i in range(calls)]
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
    parser.add_argument("--seal-frames", type=int, default=20_000, help="frames sealed and opened for the seal's cost")
    args = parser.parse_args()
    load_before = os.getloadavg()
    seal_s, open_s = seal_cost(args.seal_frames)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        echo_bot = shlex.join([sys.executable, str(ECHO_HOST)])
        common = {**phone_env(root), "LOG_LEVEL": "warning", "MAX_CONCURRENT_SESSIONS": str(args.calls * 3 + 10),
                  "START_RATE_PER_KEY": "1000", "START_BURST_PER_KEY": str(args.calls + 10),  # all calls at once
                  "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0",  # every call's echo bot launched cold
                  "DISPATCHER_API_KEYS": API_KEY}
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
        refused = store.refused()
        if refused:
            raise RuntimeError(f"the store refused the stack's user (the replicas fell back): {refused}")
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
    # Per relayed call and second, each replica seals the frames it sends on and opens those it is sent.
    sealing = 2 * FRAMES_PER_SECOND * (seal_s + open_s)
    print(f"the seal per frame ({args.seal_frames} Twilio media messages): seal (AES-GCM, then HMAC-SHA256) "
          f"{seal_s * 1e6:.1f} µs, open (HMAC check, then AES-GCM) {open_s * 1e6:.1f} µs; per relayed call "
          f"{sealing * 100:.3f} % of one core (A and B together, {FRAMES_PER_SECOND} frames/s each way)")


if __name__ == "__main__":
    asyncio.run(main())
