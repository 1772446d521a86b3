"""What polling `GET /status` costs a dispatcher: many pages (or scripts) at once against one local
`python -m dispatcher` with sessions running, the poller a process of its own.

Prints one JSON line: answers a second, latency percentiles, and the dispatcher's CPU seconds per
1000 answers (from /proc, its own process only; its bots are separate processes). docs/operations.md
quotes a run.

    uv run python -m bench.status_poll --pollers 50 --seconds 20 --sessions 3
    uv run python -m bench.status_poll --pollers 50 --seconds 20 --sessions 3 --path /healthz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.processes import run_dispatcher

POLLER = """
import asyncio, json, sys, time
import httpx

async def main(url, path, pollers, seconds):
    latencies, statuses = [], {}
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=pollers)) as http:
        async def poll():
            while time.monotonic() < end:
                began = time.perf_counter()
                answer = await http.get(path)
                latencies.append(time.perf_counter() - began)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        await asyncio.gather(*(poll() for _ in range(pollers)))
    print(json.dumps({"latencies": latencies, "statuses": statuses}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--path", default="/status", help="/healthz: the same load on the cheapest route, to compare")
    args = parser.parse_args()
    env = {"RESERVE_MIN_IDLE": "1", "RESERVE_MAX_IDLE": "2"}
    with run_dispatcher(Path(tempfile.mkdtemp()), env) as dispatcher:
        started = [httpx.post(f"{dispatcher.base_url}/start", json={"body": {}}, timeout=60).json()["session_id"]
                   for _ in range(args.sessions)]
        time.sleep(3)  # the reserve refills; the sessions' bots settle
        before = cpu_seconds(dispatcher.process.pid)
        began = time.monotonic()
        poller = subprocess.run([sys.executable, "-c", POLLER, dispatcher.base_url, args.path, str(args.pollers),
                                 str(args.seconds)], capture_output=True, text=True, check=True)
        wall = time.monotonic() - began
        used = cpu_seconds(dispatcher.process.pid) - before
        for session_id in started:
            httpx.delete(f"{dispatcher.base_url}/sessions/{session_id}", timeout=30)
    result = json.loads(poller.stdout)
    latencies = sorted(result["latencies"])
    answers = len(latencies)
    print(json.dumps({
        "path": args.path, "pollers": args.pollers, "seconds": args.seconds, "sessions": args.sessions,
        "answers": answers, "statuses": result["statuses"], "answers_per_second": round(answers / wall, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "dispatcher_cpu_seconds": round(used, 2),
        "dispatcher_cpu_ms_per_answer": round(used * 1000 / max(1, answers), 3),
        "load_average": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
