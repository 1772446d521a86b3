"""The dispatcher tier at a 100,000-call peak, measured: real replicas and a real store filled to
`--sessions` live sessions through `POST /start`, and what the peak needs of them.

Processes: a private redis-server as the stacks give the store (the AWS stack's user and access
string, tests/support/redis_server.py; `maxmemory-policy noeviction` as the in-cluster store's),
`--replicas` `python -m dispatcher` sharing it with every start-path feature on (bench.dispatch_burst's
features arm: admin keys, a runtime key with its capacity share and four budgets as the caller,
recording and transcripts kept, a bot channel token; the session cap on, set above the run), and
the fast fakes of Fly and Daily (bench/fast_fakes.py, `--latency` per call); the warm reserve off,
since no bot dials in (its bots would all be judged dead). Every start carries
a fresh `Idempotency-Key`, as the SIP edge's do. The replicas share CPU 0; the store, the fakes
and the load generator CPU 1: starts/s is one core of replicas, CPU figures are per start.

The fill runs in chunks of `--chunk` starts (bench/loadgen.py, its workers spread over the
replicas); each chunk reports its rate, p50/p95, the replicas' and the store's CPU, the store's
commands (INFO commandstats, scripts' commands included) and `instantaneous_ops_per_sec`. At each
`--checkpoints` size: the store's `used_memory`, the replicas' RSS, and the read views' time.
Then `--steps` concurrencies, `--step-starts` each: where the rate stops rising (the knee) and
which process is then busy. Last, what the peak needs (bench/dispatcher_tier_sizing.py).

    uv run python -m bench.dispatcher_tier --sessions 100000 --replicas 2 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.dispatch_burst import ADMIN_KEY, UNLIMITED, Arm, our_arm, percentile, wait_until_answering
from bench.dispatcher_tier_fill import copy_sessions
from bench.dispatcher_tier_probes import OpsSampler, ViewTime, rss_bytes, store_commands, store_usec, time_view
from bench.dispatcher_tier_sizing import Measured, needs
from bench.fakes_process import FakesProcess
from bench.pinning import cpu_seconds, pinned
from bench.start_path import CAPACITY
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

REPLICA_CPU, HARNESS_CPU = 0, 1


@dataclass(frozen=True)
class Chunk:
    sessions: int  # live after the chunk
    concurrency: int
    rate: float
    p50_ms: float
    p95_ms: float
    replica_cpu_ms: float  # per start, every replica's
    replica_busy: float  # replicas' CPU seconds per wall second (1.0: their core is full)
    store_cpu_ms: float
    store_busy: float
    store_ops_per_start: float
    store_ops_per_second: float  # commandstats over the chunk's wall time
    ops_sampled_median: float  # instantaneous_ops_per_sec
    ops_sampled_highest: int
    store_costliest: dict[str, float]  # the store's µs per start by command, the five costliest
    fakes_busy: float  # the providers' fakes: CPU seconds per wall second
    provider_calls: dict[str, int]  # by route, over the chunk
    whole_lists: int  # of them Fly lists of every machine (the reconcile's, each replica's status sample)
    errors: int
    load_average: float


@dataclass(frozen=True)
class Checkpoint:
    sessions: int
    copied: int  # of them copies (bench/dispatcher_tier_fill.py), not real starts
    used_memory: int
    used_memory_rss: int
    keys: int
    replica_rss: list[int]
    views: list[ViewTime]


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:  # a replica too busy to shut down in time
        process.kill()
        process.wait(10)


class Tier:
    """The store, the replicas and the caller's key, started; `burst` runs one chunk of starts."""

    def __init__(self, stack: ExitStack, workdir: Path, fakes: FakesProcess, replicas: int, budgets: bool,
                 fly_timeout: float | None = None) -> None:
        self.fakes = fakes
        self.store = RedisServer(workdir)
        self.store.extra_args = ["--maxmemory-policy", "noeviction"]
        self.store.start()
        stack.callback(self.store.stop)
        assert self.store.process is not None
        self.store_pid = self.store.process.pid
        self.admin = self.store.admin()
        self.ports = [free_port() for _ in range(replicas)]
        self.arm: Arm | None = None
        self.pids: list[int] = []
        for n, port in enumerate(self.ports):
            arm = our_arm("fly", fakes.url, port, wait=False, server="dispatcher", features=str(workdir))
            arm.env |= self.store.env | {"REPLICA_ID": f"r-{n}", "LOG_FORMAT": "json",
                                         # A keyed start looks its session up at Fly first (a replay?):
                                         # Fly's list limit per app is the cells' subject, not this one.
                                         "FLY_LIST_RATE": UNLIMITED, "FLY_LIST_BURST": UNLIMITED,
                                         # No bot dials in here: a reserve's bots would never say hello, and
                                         # judging them dead lists the whole app (the peak's own bots do).
                                         "RESERVE_MAX_IDLE": "0"}
            if fly_timeout is not None:  # a list of every machine takes longer than Fly's other calls
                arm.env["FLY_TIMEOUT_SECONDS"] = str(fly_timeout)
            env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}, **arm.env,
                   "PYTHONPATH": str(Path.cwd())}
            log = stack.enter_context(open(workdir / f"replica-{n}.log", "w+"))
            process = subprocess.Popen(pinned(arm.command, REPLICA_CPU), env=env, stdout=subprocess.DEVNULL,
                                       stderr=log, text=True)
            stack.callback(stop, process)
            wait_until_answering(f"replica {n}", port, process, log)
            self.pids.append(process.pid)
            if self.arm is None:
                arm.with_runtime_key(port)  # the runtime key and its capacity, in the store: every replica's
                if not budgets:  # its share stays; its budgets go (PATCH's null removes a value)
                    unset = {name: None for name in CAPACITY if name.startswith("budget.")}
                    httpx.patch(f"http://127.0.0.1:{port}/capacity", json=unset, timeout=30,
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"}).raise_for_status()
                self.arm = arm
        self.urls = [f"http://127.0.0.1:{port}/start" for port in self.ports]
        self.started = self.copied = 0
        self.copy_rates: list[float] = []  # copies a second, each time the fill copied

    def burst(self, starts: int, concurrency: int) -> Chunk:
        assert self.arm is not None
        command = [sys.executable, "-m", "bench.loadgen", "--requests", str(starts), "--concurrency",
                   str(concurrency), "--body", self.arm.body, "--idempotency-prefix", f"tier-{self.started}"]
        for header in self.arm.headers:
            command += ["--header", header]
        for url in self.urls:
            command += ["--url", url]
        cpu, store_cpu = sum(cpu_seconds(p) for p in self.pids), cpu_seconds(self.store_pid)
        commands, usec = store_commands(self.admin), store_usec(self.admin)
        fakes_before = self.fakes.stats()
        with OpsSampler(self.store.admin()) as sampler:
            out = subprocess.run(pinned(command, HARNESS_CPU), capture_output=True, text=True, check=True,
                                 timeout=3600)
        cpu = sum(cpu_seconds(p) for p in self.pids) - cpu
        store_cpu = cpu_seconds(self.store_pid) - store_cpu
        commands = store_commands(self.admin) - commands
        usec = {name: n - usec.get(name, 0) for name, n in store_usec(self.admin).items()}
        fakes_after = self.fakes.stats()
        calls = {route: n - fakes_before["calls"].get(route, 0) for route, n in fakes_after["calls"].items()}
        result = json.loads(out.stdout)
        wall, latencies = float(result["wall"]), list(result["latencies"])
        ok = sum(n for status, n in result["statuses"].items() if str(status).startswith("2"))
        self.started += ok
        per = max(ok, 1)
        return Chunk(sessions=self.started, concurrency=concurrency, rate=ok / wall,
                     p50_ms=percentile(latencies, 0.5) * 1000, p95_ms=percentile(latencies, 0.95) * 1000,
                     replica_cpu_ms=cpu / per * 1000, replica_busy=cpu / wall, store_cpu_ms=store_cpu / per * 1000,
                     store_busy=store_cpu / wall, store_ops_per_start=commands / per,
                     store_ops_per_second=commands / wall, ops_sampled_median=sampler.median,
                     ops_sampled_highest=sampler.highest, fakes_busy=(fakes_after["cpu"] - fakes_before["cpu"]) / wall,
                     store_costliest={name: n / per for name, n in sorted(usec.items(), key=lambda i: -i[1])[:5]},
                     provider_calls={route: n for route, n in calls.items() if n},
                     whole_lists=fakes_after["fly_whole_lists"] - fakes_before["fly_whole_lists"], errors=starts - ok,
                     load_average=os.getloadavg()[0])

    def newest(self) -> str:
        """The id of the newest session the caller's key started (at the replica it was not made at)."""
        assert self.arm is not None
        with httpx.Client(timeout=60) as client:
            newest = client.get(f"{self.urls[-1].removesuffix('/start')}/sessions?limit=1",
                                headers={"Authorization": self.arm.headers[0].split(": ", 1)[1]})
            newest.raise_for_status()
            session_id: str = newest.json()["sessions"][0]["session_id"]
            return session_id

    def copy(self, count: int) -> None:
        began = time.monotonic()
        asyncio.run(copy_sessions(self.store, self.fakes.url, self.newest(), count, time.time()))
        self.started += count
        self.copied += count
        took = time.monotonic() - began
        self.copy_rates.append(count / took)
        print(f"copied {count} sessions in {took:.0f} s ({count / took:.0f} a second)", file=sys.stderr, flush=True)

    def checkpoint(self, rounds: int) -> Checkpoint:
        assert self.arm is not None
        memory = self.admin.info("memory")
        key = self.arm.headers[0].split("Bearer ", 1)[1]
        base = self.urls[-1].removesuffix("/start")  # the last replica: not the one the key was made at
        one = self.newest()
        with httpx.Client(timeout=60) as client:
            queries = (("the key's newest 100", "/sessions?limit=100", key),
                       ("the key's failed (none)", "/sessions?failed=true&limit=100", key),
                       ("admin: every key's newest 100", "/sessions?limit=100", ADMIN_KEY),
                       ("one session", f"/sessions/{one}", key),
                       ("one session's timeline", f"/sessions/{one}/timeline", key),
                       ("admin: /status", "/status", ADMIN_KEY),
                       ("admin: /capacity", "/capacity", ADMIN_KEY))
            views = [time_view(client, base + path, k, rounds, label) for label, path, k in queries]
        return Checkpoint(sessions=self.started, copied=self.copied, used_memory=int(memory["used_memory"]),
                          used_memory_rss=int(memory["used_memory_rss"]), keys=int(self.admin.dbsize()),
                          replica_rss=[rss_bytes(p) for p in self.pids], views=views)


def fill(tier: Tier, args: argparse.Namespace, checkpoints: list[int]) -> tuple[list[Chunk], list[Checkpoint]]:
    """Real starts up to `--real-starts`; past it, copies up to a chunk short of each checkpoint,
    then a chunk of real starts measured at that size."""
    chunks: list[Chunk] = []
    marks: list[Checkpoint] = []
    for mark in sorted(checkpoints):
        while tier.started < mark:
            copies = mark - args.chunk - tier.started
            if tier.started >= args.real_starts and copies > 0:
                print(f"copying {copies} sessions", file=sys.stderr, flush=True)
                tier.copy(copies)
            ahead = min(mark, args.real_starts) if tier.started < args.real_starts else mark
            chunk = tier.burst(min(args.chunk, ahead - tier.started), args.concurrency)
            chunks.append(chunk)
            print(f"{chunk.sessions:7d} live: {chunk.rate:6.1f}/s p50 {chunk.p50_ms:5.0f} ms p95 {chunk.p95_ms:5.0f} "
                  f"ms, replicas {chunk.replica_busy:.2f} busy, store {chunk.store_busy:.2f} busy, "
                  f"fakes {chunk.fakes_busy:.2f} busy {chunk.provider_calls} ({chunk.whole_lists} of every "
                  f"machine), store µs/start "
                  f"{ {k: round(v) for k, v in chunk.store_costliest.items()} }, "
                  f"{chunk.store_ops_per_second:6.0f} ops/s, load {chunk.load_average:.1f}, errors {chunk.errors}",
                  file=sys.stderr, flush=True)
            if chunk.rate == 0:
                raise RuntimeError("no start succeeded: see the replicas' logs")
        marks.append(tier.checkpoint(args.rounds))
        print(f"checkpoint: {json.dumps(asdict(marks[-1]))}", file=sys.stderr, flush=True)  # a run cut short keeps it
    return chunks, marks


def measured(chunks: list[Chunk], marks: list[Checkpoint], empty: Checkpoint) -> Measured:
    """The sizing's inputs: the fill's medians at its own concurrency, memory per session at the end."""
    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    real = [m for m in marks if m.copied == 0]
    last = real[-1] if real else marks[-1]  # the store's bytes a real start leaves, where one was measured
    started = last.sessions - empty.sessions
    return Measured(
        # From CPU, not wall time: on a shared machine the replicas' core is not all theirs.
        starts_per_core=1000 / median([c.replica_cpu_ms for c in chunks]),
        store_ops_per_start=median([c.store_ops_per_start for c in chunks]),
        store_cpu_ms_per_start=median([c.store_cpu_ms for c in chunks]),
        store_bytes_per_session=(last.used_memory - empty.used_memory) / started,
        replica_rss_bytes_per_session=(sum(last.replica_rss) - sum(empty.replica_rss)) / started,
    )


def report(chunks: list[Chunk], marks: list[Checkpoint], steps: list[Chunk], result: Measured,
           args: argparse.Namespace) -> None:
    budgets = "on" if args.budgets else "off"
    print(f"\n{args.replicas} replica(s) on one core, the key's budgets {budgets}; Fly and Daily fakes at "
          f"{args.latency * 1000:g} ms a call; FLY_TIMEOUT_SECONDS {args.fly_timeout or 'the default'}; "
          f"nproc {os.cpu_count()}; concurrency {args.concurrency}")
    print(f"{'live':>7} {'starts/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'replica ms/start':>16} {'store ms/start':>14} "
          f"{'ops/start':>9} {'ops/s':>7} {'inst. ops/s med/max':>19} {'lists of all':>12} {'errors':>6} {'load':>5}")
    for c in chunks:
        print(f"{c.sessions:7d} {c.rate:8.1f} {c.p50_ms:7.0f} {c.p95_ms:7.0f} {c.replica_cpu_ms:16.2f} "
              f"{c.store_cpu_ms:14.3f} {c.store_ops_per_start:9.1f} {c.store_ops_per_second:7.0f} "
              f"{c.ops_sampled_median:9.0f}/{c.ops_sampled_highest:<9d} {c.whole_lists:12d} {c.errors:6d} "
              f"{c.load_average:5.1f}")
    for m in marks:
        print(f"\nat {m.sessions} live sessions ({m.copied} of them copies): store used_memory "
              f"{m.used_memory / 1e6:.1f} MB (rss "
              f"{m.used_memory_rss / 1e6:.1f} MB, {m.keys} keys); replica RSS "
              f"{', '.join(f'{r / 1e6:.0f} MB' for r in m.replica_rss)}")
        for v in m.views:
            failed = f"  {v.errors} failed ({v.error})" if v.errors else ""
            print(f"  {v.label:32} {v.shown:4d} shown  p50 {v.p50_ms:7.1f} ms  p95 {v.p95_ms:7.1f} ms{failed}")
    if steps:
        print(f"\nthe knee: {args.step_starts} starts at each concurrency, at {marks[-1].sessions}+ live sessions")
        print(f"{'concurrency':>11} {'starts/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'replicas busy':>13} "
              f"{'store busy':>10} {'inst. ops/s max':>15} {'lists of all':>12} {'errors':>6}")
        for s in steps:
            print(f"{s.concurrency:11d} {s.rate:8.1f} {s.p50_ms:7.0f} {s.p95_ms:7.0f} {s.replica_busy:13.2f} "
                  f"{s.store_busy:10.2f} {s.ops_sampled_highest:15d} {s.whole_lists:12d} {s.errors:6d}")
    peak = needs(result, starts_per_second=args.peak_rate, live_sessions=args.live, hours_at_peak=args.hours_at_peak)
    print(f"\nmeasured: {result}")
    print(f"the peak ({args.peak_rate:g} starts/s, {args.live:,} live, {args.hours_at_peak:g} h at the peak): {peak}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--checkpoints", default="10000,50000,100000", help="live sessions to measure memory at")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=2000, help="starts per measured chunk of the fill")
    parser.add_argument("--real-starts", type=int, help="starts through the API before copies fill the rest "
                        "(bench/dispatcher_tier_fill.py), a chunk of real ones still measured at each checkpoint; "
                        "default: every session a real start")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per provider call")
    parser.add_argument("--rounds", type=int, default=50, help="reads of each view at a checkpoint")
    parser.add_argument("--steps", default="8,32,128,512", help="concurrencies for the knee, after the fill")
    parser.add_argument("--step-starts", type=int, default=1500)
    parser.add_argument("--budgets", action=argparse.BooleanOptionalAction, default=True,
                        help="the key's four budgets, checked at each start (--no-budgets: its share and the cap only)")
    parser.add_argument("--peak-rate", type=float, default=420.0)
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--hours-at-peak", type=float, default=1.0, help="hours of the peak's rate the store keeps")
    parser.add_argument("--fly-timeout", type=float, help="the replicas' FLY_TIMEOUT_SECONDS (default: the "
                        "dispatcher's), which bounds the provider's list of every machine too")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args()
    args.real_starts = args.sessions if args.real_starts is None else args.real_starts
    if HARNESS_CPU < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {HARNESS_CPU})  # the copies and the probes: the replicas' core is theirs
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    checkpoints = sorted({min(int(c), args.sessions) for c in args.checkpoints.split(",")} | {args.sessions})
    with (ExitStack() as stack, tempfile.TemporaryDirectory() as workdir,
          FakesProcess(latency=args.latency, cpu=HARNESS_CPU) as fakes):
        tier = Tier(stack, Path(workdir), fakes, args.replicas, args.budgets, args.fly_timeout)
        tier.burst(20 * args.replicas, args.replicas)  # pools, imports, the scripts loaded
        empty = tier.checkpoint(rounds=1)
        chunks, marks = fill(tier, args, checkpoints)
        steps = [tier.burst(args.step_starts, int(c)) for c in args.steps.split(",") if c]
    result = measured(chunks, marks, empty)
    report(chunks, marks, steps, result, args)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "chunks": [asdict(c) for c in chunks],
                                         "checkpoints": [asdict(m) for m in marks],
                                         "steps": [asdict(s) for s in steps], "copy_rates": tier.copy_rates,
                                         "measured": asdict(result),
                                         "needs": asdict(needs(result, starts_per_second=args.peak_rate,
                                                               live_sessions=args.live,
                                                               hours_at_peak=args.hours_at_peak))}, indent=1))


if __name__ == "__main__":
    main()
