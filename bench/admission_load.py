"""Admission control under load: hundreds of concurrent `POST /start` against a real dispatcher
process (`python -m dispatcher`, MACHINES=fly) wired to the loopback fakes of Fly and Daily, with
the provider limits on (Fly create and list: 1 req/s, burst 3, as documented).

Every request must get 200/201, or 429/503 with `Retry-After`; none a 5xx other than that, none
may hang past the deadline, and no session may get two machines (read from the fake Fly's own
records). Half the requests repeat another's `Idempotency-Key` at the same moment, so a double
launch would show. Prints latency percentiles, throughput and counts; exits 1 if a check fails.

    uv run python -m bench.admission_load                 # 500 requests, 250 keys, each sent twice
    uv run python -m bench.admission_load --no-keys       # no Idempotency-Key: the create bucket gates
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.pinning import cpu_seconds
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.fakes.server import FakeApi, serve
from tests.support.processes import run_dispatcher

KEY = "bench-admission-key-0123456789"


@dataclass
class Result:
    index: int
    key: str | None
    status: int | None  # None: no answer before the deadline, or the connection failed
    seconds: float
    retry_after: str | None = None
    code: str | None = None
    session_id: str | None = None
    failure: str | None = None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def post_start(host: str, port: int, index: int, key: str | None) -> tuple[int, dict[str, str], bytes]:
    """One `POST /start` on its own connection, HTTP/1.1 by hand: httpx costs more CPU per request
    than the dispatcher does, and on 2 cores the client would be what the bench measured."""
    body = json.dumps({"body": {"n": index % 2 if key is None else 0}}).encode()
    head = [
        "POST /start HTTP/1.1",
        f"Host: {host}:{port}",
        f"Authorization: Bearer {KEY}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if key is not None:
        head.append(f"Idempotency-Key: {key}")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()  # Connection: close: the server ends the response with EOF
    finally:
        writer.close()
    header_block, _, content = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, content


async def one(base_url: str, index: int, key: str | None, gate: asyncio.Event, deadline: float) -> Result:
    url = httpx.URL(base_url)
    await gate.wait()  # every request is in flight at once
    began = time.perf_counter()
    try:
        status, headers, content = await asyncio.wait_for(
            post_start(url.host, url.port or 80, index, key), timeout=deadline
        )
    except (TimeoutError, OSError, ValueError, IndexError) as exc:
        return Result(index, key, None, time.perf_counter() - began, failure=type(exc).__name__)
    took = time.perf_counter() - began
    body: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        body = json.loads(content)
    return Result(
        index,
        key,
        status,
        took,
        retry_after=headers.get("retry-after"),
        code=(body.get("error") or {}).get("code"),
        session_id=body.get("session_id"),
    )


async def fire(base_url: str, requests: int, keys: int | None, deadline: float) -> tuple[list[Result], float]:
    names = [f"load-{uuid.uuid4().hex}" for _ in range(keys or 0)]
    gate = asyncio.Event()
    tasks = [
        asyncio.create_task(one(base_url, i, names[i % len(names)] if names else None, gate, deadline))
        for i in range(requests)
    ]
    await asyncio.sleep(0.2)  # let every task reach the gate
    began = time.perf_counter()
    gate.set()
    results = await asyncio.gather(*tasks)
    return list(results), time.perf_counter() - began


def check(results: list[Result], fly: FakeFly, deadline: float) -> list[str]:
    problems = []
    for r in results:
        if r.status is None:
            problems.append(f"request {r.index}: no answer ({r.failure}) after {r.seconds:.1f}s")
        elif r.status in (429, 503) and not r.retry_after:
            problems.append(f"request {r.index}: {r.status} without Retry-After")
        elif r.status >= 500 and r.status != 503:
            problems.append(f"request {r.index}: {r.status} {r.code}")
        elif r.status not in (200, 201, 429, 503):
            problems.append(f"request {r.index}: unexpected {r.status} {r.code}")
        if r.seconds > deadline:
            problems.append(f"request {r.index}: took {r.seconds:.1f}s, past the {deadline:g}s deadline")
    per_session = Counter(m["config"]["metadata"].get("voicefleet_session") for m in list(fly.machines.values()))
    problems += [f"session {sid} has {n} machines" for sid, n in per_session.items() if n > 1]
    by_key: dict[str, set[str]] = {}
    for r in results:
        if r.key and r.session_id:
            by_key.setdefault(r.key, set()).add(r.session_id)
    problems += [f"key {k} answered with sessions {s}" for k, s in by_key.items() if len(s) > 1]
    accepted = {r.session_id for r in results if r.status in (200, 201)}
    problems += [f"session {sid} was answered but has no machine" for sid in accepted if sid not in per_session]
    return problems


def report(results: list[Result], wall: float, fly: FakeFly, daily: FakeDaily, problems: list[str]) -> None:
    latencies = [r.seconds for r in results]
    accepted = [r.seconds for r in results if r.status in (200, 201)]
    refused = [r.seconds for r in results if r.status in (429, 503)]
    statuses = Counter(f"{r.status} {r.code or ''}".strip() if r.status else f"none ({r.failure})" for r in results)
    ms = 1000
    print(f"{len(results)} concurrent POST /start in {wall:.2f} s: {len(results) / wall:.0f} answers/s")
    for label, values in (("all", latencies), ("200/201", accepted), ("429/503", refused)):
        if values:
            p50, p99 = percentile(values, 50) * ms, percentile(values, 99) * ms
            print(f"  latency {label:8} p50 {p50:7.0f} ms   p99 {p99:7.0f} ms   ({len(values)} answers)")
    print("  by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    retry_afters = Counter(r.retry_after for r in results if r.retry_after)
    print(
        "  Retry-After (s): " + ", ".join(f"{k}: {v}" for k, v in sorted(retry_afters.items(), key=lambda i: int(i[0])))
    )
    creates = fly.calls_to("POST", "/machines")
    creates = [c for c in creates if c.path.endswith("/machines")]
    lists = [c for c in fly.calls_to("GET", "/machines") if c.path.endswith("/machines")]
    print(
        f"  fake Fly: {len(creates)} create calls, {len(fly.machines)} machines, {len(lists)} list calls;"
        f" fake Daily: {len(daily.rooms)} rooms"
    )
    if creates:
        first, last = min(c.at for c in creates), max(c.at for c in creates)  # type: ignore[attr-defined]
        span = last - first
        print(f"  creates reached Fly over {span:.2f} s")
    print("checks: 5xx only as 503 + Retry-After, none past the deadline, no session launched twice: ", end="")
    print("OK" if not problems else f"{len(problems)} FAILED")
    for line in problems[:20]:
        print("  " + line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--keys", type=int, default=None, help="distinct Idempotency-Keys (default: requests / 2)")
    parser.add_argument("--no-keys", action="store_true", help="send no Idempotency-Key at all")
    parser.add_argument("--deadline", type=float, default=15.0, help="seconds a request may take")
    parser.add_argument("--max-sessions", type=int, default=100, help="MAX_CONCURRENT_SESSIONS")
    parser.add_argument(
        "--per-key-limit", action="store_true", help="keep the per-API-key start limit on (default: lifted)"
    )
    args = parser.parse_args()
    keys = None if args.no_keys else (args.keys or max(1, args.requests // 2))

    fly, daily = FakeFly(), FakeDaily()
    record_arrival(fly)
    with serve(fly) as fly, serve(daily, "/v1") as daily, tempfile.TemporaryDirectory() as logs:
        env = {
            "MACHINES": "fly",
            "DISPATCHER_API_KEYS": KEY,
            **fly.env,
            **daily.env,
            "MAX_CONCURRENT_SESSIONS": str(args.max_sessions),
            "REAPER_INTERVAL_SECONDS": "0",
            "LOG_LEVEL": "warning",
            # FLY_CREATE_* and FLY_LIST_* stay at their defaults: 1/s, burst 3, max wait 3 s.
        }
        if not args.per_key_limit:
            env |= {"START_RATE_PER_KEY": "100000", "START_BURST_PER_KEY": "100000"}
        with run_dispatcher(Path(logs), env) as dispatcher:
            print(
                f"dispatcher pid {dispatcher.process.pid} (MACHINES=fly, Fly limits on); "
                f"{args.requests} requests, {'no keys' if keys is None else f'{keys} Idempotency-Keys'}, "
                f"deadline {args.deadline:g} s"
            )
            before = cpu_seconds(dispatcher.process.pid), time.process_time()
            results, wall = asyncio.run(fire(dispatcher.base_url, args.requests, keys, args.deadline))
            used = cpu_seconds(dispatcher.process.pid) - before[0], time.process_time() - before[1]
            time.sleep(0.5)  # let any create still in flight land before reading the fake
            problems = check(results, fly, args.deadline)
            report(results, wall, fly, daily, problems)
            print(f"  CPU during the burst: dispatcher {used[0]:.2f} s, this process (client + fakes) {used[1]:.2f} s")
            if problems:
                log = dispatcher.log()
                print("dispatcher log (tail):\n" + log[-3000:], file=sys.stderr)
    return 1 if problems else 0


def record_arrival(fake: FakeApi) -> None:
    """Stamp each call the fake receives with its arrival time (for the creates-per-second line)."""
    calls = fake.calls

    class Stamped(list):  # type: ignore[type-arg]
        def append(self, call: Any) -> None:
            call.at = time.monotonic()
            super().append(call)

    fake.calls = Stamped(calls)


if __name__ == "__main__":
    sys.exit(main())
