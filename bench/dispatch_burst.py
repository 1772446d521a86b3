"""`POST /start` under a burst, per provider, with a harness that is not its own bottleneck.

Three processes: the fast fakes of Daily/Fly/GCE/ECS (bench/fast_fakes.py, `--latency` per
call) and the load generator (bench/loadgen.py) share one CPU; the dispatcher under test is
pinned to the other (`taskset`), started fresh per arm and round, arms alternating. Its CPU is
read from /proc around each phase; calls per start are counted by the fakes. Every limit that
would refuse a start (admission cap, per-key rate, client-side provider buckets) is lifted: the
figure is what one dispatcher core can do. ECS runs against the fast fake's JSON 1.1 endpoint
(which checks every call's SigV4 signature as AWS does), not moto: moto costs more CPU per call
than the dispatcher.

`--example DIR` adds the Fly example's bot_runner.py (pipecat-examples
deployment/flyio-example, not part of this repository) as an arm against the same fakes; its
semantics are those of our `?wait=started`.

    uv run python -m bench.dispatch_burst --rounds 3 [--example /tmp/flyio-example]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.fakes_process import FakesProcess
from bench.fast_fakes import AWS_KEY_ID, AWS_REGION, AWS_SECRET, AWS_TOKEN
from bench.pinning import cpu_seconds, pinned
from bench.start_path import CAPACITY
from tests.fakes.server import free_port

KEY, ADMIN_KEY = "bench-key", "bench-admin"
UNLIMITED = "1000000"
DISPATCHER_CPU, HARNESS_CPU = 0, 1


def provider_env(provider: str, fakes: str) -> dict[str, str]:
    daily = {"DAILY_API_KEY": "bench-daily", "DAILY_API_URL": f"{fakes}/v1",
             "DAILY_RATE": UNLIMITED, "DAILY_BURST": UNLIMITED}
    return {
        "fly": {**daily, "FLY_API_TOKEN": "bench-fly", "FLY_APP": "bench", "FLY_API_HOST": fakes,
                "BOT_IMAGE": "registry.fly.io/bench@sha256:" + "a" * 64,
                "FLY_CREATE_RATE": UNLIMITED, "FLY_CREATE_BURST": UNLIMITED},
        "gce": {**daily, "GCE_PROJECT": "bench", "GCE_ZONE": "europe-west1-b", "GCE_INSTANCE_TEMPLATE": "bot",
                "GCE_API_URL": f"{fakes}/compute/v1", "GCE_AUTH": "none",
                "GCE_INSERT_RATE": UNLIMITED, "GCE_INSERT_BURST": UNLIMITED},
        "ecs": {**daily, "AWS_REGION": AWS_REGION, "AWS_ENDPOINT_URL": fakes, "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SESSION_TOKEN": AWS_TOKEN,
                "ECS_CLUSTER": "bench", "ECS_TASK_DEFINITION": "bot",
                "ECS_SUBNETS": "subnet-1", "ECS_SECURITY_GROUPS": "sg-1",
                "ECS_RUN_TASK_RATE": UNLIMITED, "ECS_RUN_TASK_BURST": UNLIMITED},
    }[provider]


@dataclass
class Arm:
    name: str
    command: list[str]
    env: dict[str, str]
    path: str
    body: str
    headers: list[str] = field(default_factory=list)
    cwd: str | None = None

    def with_runtime_key(self, port: int) -> None:
        """With admin keys: a runtime key made through `POST /keys` (with a capacity value and its four
        budgets, as bench.start_path's features arm) is the caller."""
        if "DISPATCHER_ADMIN_KEYS" not in self.env:
            return
        admin = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
        made = json.loads(_call(port, "POST", "/keys", {"name": "bench-runtime"}, admin))
        _call(port, "PATCH", "/capacity", CAPACITY, admin)
        self.headers = [f"Authorization: Bearer {made['secret']}"]


def _call(port: int, method: str, path: str, body: object, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        read: bytes = answer.read()
        return read


def our_arm(provider: str, fakes: str, port: int, *, wait: bool, server: str, features: str | None = None) -> Arm:
    env = {
        **provider_env(provider, fakes),
        "MACHINES": provider, "HOST": "127.0.0.1", "PORT": str(port), "DISPATCHER_API_KEYS": KEY,
        "MAX_CONCURRENT_SESSIONS": UNLIMITED, "START_RATE_PER_KEY": UNLIMITED, "START_BURST_PER_KEY": UNLIMITED,
        "REAPER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "warning",
    }
    if features is not None:  # every start-path feature: recording kept, a bot channel, a runtime key
        env |= {"DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "RECORDING": "on", "RECORDING_TRANSCRIPT": "on",
                "RECORDING_DESTINATION": features, "BOT_CHANNEL_TOKEN": "bench-channel-" + "c" * 32,
                "BOT_CHANNEL_URL": "wss://dispatcher.bench.invalid/bot", "FLY_ORG": "bench"}
    command = [sys.executable, "-m", "dispatcher"]
    if server != "dispatcher":  # uvicorn's own CLI, to compare its HTTP parsers and loops
        http, _, loop = server.partition("+")
        command = [sys.executable, "-m", "uvicorn", "dispatcher.app:create_app", "--factory", "--port", str(port),
                   "--http", http, "--loop", loop or "asyncio", "--no-server-header", "--log-level", "warning"]
    label = (f"voicefleet {provider}{' ?wait=started' if wait else ''}"
             f"{'' if server == 'dispatcher' else f' [{server}]'}{' +features' if features is not None else ''}")
    return Arm(label, command, env, "/start" + ("?wait=started" if wait else ""),
               '{"body": {}}', [f"Authorization: Bearer {KEY}"])


def example_arm(directory: str, fakes: str, port: int) -> Arm:
    env = {"FLY_API_HOST": f"{fakes}/v1", "FLY_APP_NAME": "bench", "FLY_API_KEY": "bench-fly",
           "DAILY_API_KEY": "bench-daily", "DAILY_API_URL": f"{fakes}/v1"}
    command = [sys.executable, "-m", "uvicorn", "bot_runner:app", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
    return Arm("Fly example (waits for started)", command, env, "/", "{}", cwd=directory)


@dataclass
class Phase:
    rate: float
    p50: float
    p99: float
    cpu_ms: float
    calls: float
    fakes_cpu_ms: float
    errors: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(url: str, arm: Arm, requests: int, concurrency: int) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.loadgen", "--url", url, "--requests", str(requests),
               "--concurrency", str(concurrency), "--body", arm.body]
    for header in arm.headers:
        command += ["--header", header]
    out = subprocess.run(pinned(command, HARNESS_CPU), capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def phase(pid: int, fakes: FakesProcess, url: str, arm: Arm, requests: int, concurrency: int) -> Phase:
    before_calls, cpu = sum(fakes.stats()["calls"].values()), cpu_seconds(pid)
    fakes_cpu = fakes.stats()["cpu"]
    result = load(url, arm, requests, concurrency)
    cpu = cpu_seconds(pid) - cpu
    stats = fakes.stats()
    latencies = result["latencies"]
    statuses = result["statuses"]
    assert isinstance(latencies, list) and isinstance(statuses, dict) and isinstance(result["wall"], float)
    ok = sum(n for status, n in statuses.items() if str(status).startswith("2"))
    return Phase(
        rate=ok / result["wall"],
        p50=percentile(latencies, 0.5) * 1000,
        p99=percentile(latencies, 0.99) * 1000,
        cpu_ms=cpu / max(ok, 1) * 1000,
        calls=(sum(stats["calls"].values()) - before_calls - 2) / max(ok, 1),  # minus the 2 stats calls
        fakes_cpu_ms=(stats["cpu"] - fakes_cpu) / max(ok, 1) * 1000,
        errors=requests - ok,
    )


def wait_until_answering(name: str, port: int, process: subprocess.Popen[str], log: IO[str],
                         seconds: float = 60.0) -> None:
    """Until the server answers HTTP at all: a 404 is an answer (the Fly example has no /healthz)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{name} did not start: {log.read()[-2000:]}") from exc
            time.sleep(0.1)


def run_arm(arm: Arm, fakes: FakesProcess, port: int, sequential: int, burst: int, concurrency: int) -> list[Phase]:
    fakes.reset()
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}, **arm.env,
           "PYTHONPATH": str(Path.cwd())}
    log = tempfile.TemporaryFile("w+")  # not a pipe: a server that logs must never block on it
    process = subprocess.Popen(pinned(arm.command, DISPATCHER_CPU), env=env, cwd=arm.cwd,
                               stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        url = f"http://127.0.0.1:{port}{arm.path}"
        wait_until_answering(arm.name, port, process, log)
        arm.with_runtime_key(port)
        warm_up = load(url, arm, 10, 2)  # pools, the domain config, imports on first use
        if set(map(str, warm_up["statuses"])) - {"200", "201"}:  # type: ignore[call-overload]
            # A rate of failed starts is no figure: stop and say why instead of printing "0/s".
            log.seek(0)
            raise RuntimeError(f"{arm.name}: warm-up starts answered {warm_up['statuses']}: {log.read()[-2000:]}")
        return [phase(process.pid, fakes, url, arm, sequential, 1),
                phase(process.pid, fakes, url, arm, burst, concurrency)]
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--providers", default="fly,gce,ecs")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--servers", default="dispatcher",
                        help="comma-separated: dispatcher (python -m dispatcher), or uvicorn's CLI with "
                             "HTTP[+LOOP], e.g. h11,h11+uvloop,httptools+uvloop")
    parser.add_argument("--no-wait", action="store_true", help="skip the ?wait=started arms")
    parser.add_argument("--example", help="directory holding the Fly example's bot_runner.py")
    parser.add_argument("--features", action="store_true",
                        help="every start-path feature on: recording kept, a bot channel, a runtime key with "
                             "budgets as the caller")
    args = parser.parse_args()

    with FakesProcess(latency=args.latency, cpu=HARNESS_CPU) as fakes, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        arms = [our_arm(p, fakes.url, port, wait=w, server=s, features=folder if args.features else None)
                for p in args.providers.split(",") for w in ([False] if args.no_wait else [False, True])
                for s in args.servers.split(",")]
        if args.example:
            arms.append(example_arm(args.example, fakes.url, port))
        results: dict[str, list[list[Phase]]] = {arm.name: [] for arm in arms}
        for round_ in range(args.rounds):
            for arm in arms:
                results[arm.name].append(run_arm(arm, fakes, port, args.sequential, args.burst, args.concurrency))
                print(f"round {round_ + 1}: {arm.name} done", file=sys.stderr, flush=True)
    report(results, args)


def report(results: dict[str, list[list[Phase]]], args: argparse.Namespace) -> None:
    def med(rows: list[list[Phase]], index: int, attr: str) -> float:
        return statistics.median(getattr(r[index], attr) for r in rows)

    load_avg = os.getloadavg()[0]
    print(f"\n{args.latency * 1000:g} ms per provider call; sequential {args.sequential} starts, burst {args.burst} "
          f"at concurrency {args.concurrency}; medians of {args.rounds} alternating rounds; load avg {load_avg:.1f}")
    print(f"{'arm':44} {'seq p50/p99 ms':>15} {'burst/s':>8} {'burst p50/p99 ms':>17} {'CPU ms/start seq/burst':>23}"
          f" {'calls/start':>11} {'fakes CPU ms':>12} {'errors':>6}")
    for name, rows in results.items():
        print(f"{name:44} {med(rows, 0, 'p50'):6.1f}/{med(rows, 0, 'p99'):<8.1f} {med(rows, 1, 'rate'):8.0f} "
              f"{med(rows, 1, 'p50'):7.0f}/{med(rows, 1, 'p99'):<9.0f} "
              f"{med(rows, 0, 'cpu_ms'):10.2f}/{med(rows, 1, 'cpu_ms'):<12.2f} {med(rows, 1, 'calls'):11.2f} "
              f"{med(rows, 1, 'fakes_cpu_ms'):12.3f} {sum(r[1].errors + r[0].errors for r in rows):6d}")


if __name__ == "__main__":
    main()
