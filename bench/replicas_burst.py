"""Keyed `POST /start` bursts against 1, 2 and 3 dispatcher replicas sharing one store: what the
coordination store costs per start.

Processes: the fast fakes (bench/fast_fakes.py: Fly and Daily, `--latency` per call), a private
`redis-server` and the load generator (bench/loadgen.py, its workers spread over the replicas)
share one CPU; the replicas share the other (`taskset`), so starts/s is what one core of
dispatchers does, and CPU per start adds up every replica's. Every start carries a fresh
`Idempotency-Key`, so each takes the store's start lease. Arms: one replica without a store (the
baseline), then 1, 2 and 3 replicas with `REDIS_URL`, alternating per round. Store calls per start
come from the server's own command counters (`INFO commandstats`), heartbeats included.

    uv run python -m bench.replicas_burst --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.dispatch_burst import KEY, UNLIMITED, provider_env
from bench.fakes_process import FakesProcess
from bench.pinning import cpu_seconds, pinned
from tests.fakes.server import free_port

STORE_PASSWORD = "bench-replicas-store-password"  # a dispatcher refuses a store without one

REPLICA_CPU, HARNESS_CPU = 0, 1


@dataclass
class Result:
    rate: float
    cpu_ms: float
    store_cpu_ms: float
    store_calls: float
    errors: int


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", workdir, "--loglevel", "warning", "--requirepass", STORE_PASSWORD]
    process = subprocess.Popen(pinned(command, HARNESS_CPU), stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=STORE_PASSWORD)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return process, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def replica(fakes: str, port: int, store_port: int | None, name: str) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        **provider_env("fly", fakes),
        "MACHINES": "fly", "HOST": "127.0.0.1", "PORT": str(port), "DISPATCHER_API_KEYS": KEY,
        "MAX_CONCURRENT_SESSIONS": UNLIMITED, "START_RATE_PER_KEY": UNLIMITED, "START_BURST_PER_KEY": UNLIMITED,
        "REAPER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "warning", "PYTHONPATH": str(Path.cwd()),
        # A keyed start looks its session up first (a replay?): Fly's list limit is not the subject here.
        "FLY_LIST_RATE": UNLIMITED, "FLY_LIST_BURST": UNLIMITED,
    }
    if store_port is not None:
        env |= {"REDIS_URL": f"redis://127.0.0.1:{store_port}/0", "REDIS_PASSWORD": STORE_PASSWORD, "REPLICA_ID": name,
                "REDIS_MESSAGE_SECRET": "bench-replicas-sign-their-store-messages"}
    command = [sys.executable, "-m", "dispatcher"]
    process = subprocess.Popen(pinned(command, REPLICA_CPU), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"replica {name} did not start") from None
            time.sleep(0.1)


def load(urls: list[str], requests: int, concurrency: int, prefix: str) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.loadgen", "--requests", str(requests), "--concurrency", str(concurrency),
               "--body", '{"body": {}}', "--header", f"Authorization: Bearer {KEY}", "--idempotency-prefix", prefix]
    for url in urls:
        command += ["--url", url]
    out = subprocess.run(pinned(command, HARNESS_CPU), capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def store_calls(port: int) -> int:
    stats = redis.Redis(port=port, password=STORE_PASSWORD).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def run_arm(replicas: int, with_store: bool, fakes: FakesProcess, requests: int, concurrency: int,
            round_: int) -> Result:
    fakes.reset()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as workdir:
        store_port = None
        store_pid = None
        if with_store:
            store, store_port = start_redis(workdir)
            stack.callback(lambda: (store.terminate(), store.wait(10)))
            store_pid = store.pid
        ports = [free_port() for _ in range(replicas)]
        processes = []
        for n, port in enumerate(ports):
            process = replica(fakes.url, port, store_port, f"r-{n}")
            stack.callback(lambda p=process: (p.terminate(), p.wait(20)))
            processes.append(process)
        urls = [f"http://127.0.0.1:{port}/start" for port in ports]
        load(urls, 10 * replicas, replicas, f"warm-{round_}-{replicas}-{with_store}")  # pools, imports
        cpu = sum(cpu_seconds(p.pid) for p in processes)
        store_cpu = cpu_seconds(store_pid) if store_pid else 0.0
        calls = store_calls(store_port) if store_port else 0
        result = load(urls, requests, concurrency, f"run-{round_}-{replicas}-{with_store}")
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu
        store_cpu = (cpu_seconds(store_pid) - store_cpu) if store_pid else 0.0
        calls = (store_calls(store_port) - calls) if store_port else 0
    statuses = result["statuses"]
    assert isinstance(statuses, dict) and isinstance(result["wall"], float)
    ok = sum(n for status, n in statuses.items() if str(status).startswith("2"))
    return Result(rate=ok / result["wall"], cpu_ms=cpu / max(ok, 1) * 1000,
                  store_cpu_ms=store_cpu / max(ok, 1) * 1000, store_calls=calls / max(ok, 1),
                  errors=requests - ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    arms = [(1, False), (1, True), (2, True), (3, True)]
    results: dict[tuple[int, bool], list[Result]] = {arm: [] for arm in arms}
    with FakesProcess(latency=args.latency, cpu=HARNESS_CPU) as fakes:
        for round_ in range(args.rounds):
            for arm in arms:
                results[arm].append(run_arm(*arm, fakes, args.requests, args.concurrency, round_))
                print(f"round {round_ + 1}: {arm} done", file=sys.stderr, flush=True)
    print(f"\nfly, {args.latency * 1000:g} ms per provider call; {args.requests} keyed starts at concurrency "
          f"{args.concurrency} per arm; medians of {args.rounds} alternating rounds; load avg {os.getloadavg()[0]:.1f}")
    print(f"{'arm':26} {'starts/s':>8} {'replica CPU ms/start':>21} {'store CPU ms/start':>19} "
          f"{'store calls/start':>18} {'errors':>6}")
    for (count, with_store), rows in results.items():
        label = f"{count} replica{'s' if count > 1 else ''}, {'store' if with_store else 'no store'}"
        def median(attr: str, rows: list[Result] = rows) -> float:
            return statistics.median(getattr(r, attr) for r in rows)

        print(f"{label:26} {median('rate'):8.0f} {median('cpu_ms'):21.2f} {median('store_cpu_ms'):19.3f} "
              f"{median('store_calls'):18.1f} {sum(r.errors for r in rows):6d}")


if __name__ == "__main__":
    main()
