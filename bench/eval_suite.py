"""The booking line's suite as a user runs it: wall time, and the caller's CPU per minute of call.

    uv run --all-groups python -m bench.eval_suite [--repeat 3] [--concurrency 2] [--runs 2] [--reserve N]

Starts a local dispatcher (`python -m dispatcher`, `BOT_FILE=examples/booking/bot.py`, with
`RESERVE_MIN_IDLE` warm bots: by default as many as calls run at once, as a deployment's reserve
gives each caller one; `--reserve 0` turns the reserve off, so every call starts its own bot), then
runs `voicefleet eval examples/booking/scenarios --repeat 3 --concurrency 2 --json` as its own
process, `--runs` times, each once the reserve's bots are all idle (`GET /status`). For each run it prints:

- the wall time of the command, start to exit (the goal: at most 3 minutes);
- the calls passed;
- the eval process's CPU (user + system, from `wait4`'s resource usage), per minute of call, where a
  call's minutes are its session's `created` → `ended` in the dispatcher's session list;
- where the time went: the calls' phases summed, per slot, the idle slots and the speech floor
  (bench/eval_phases.py).

Asserts nothing; prints the load average before and after each run (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.eval_phases import breakdown, mean_call
from tests.support.processes import run_dispatcher

ROOT = Path(__file__).resolve().parents[1]
BOT_FILE = ROOT / "examples" / "booking" / "bot.py"
SUITE = ROOT / "examples" / "booking" / "scenarios"


def eval_run(base_url: str, repeat: int, concurrency: int) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, CPU seconds of the eval process, its --json summary)."""
    command = [str(Path(sys.executable).parent / "voicefleet"), "eval", str(SUITE), "--url", base_url,
               "--repeat", str(repeat), "--concurrency", str(concurrency), "--json"]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - began
    return wall, usage.ru_utime + usage.ru_stime, json.loads(out)


def call_seconds(base_url: str, summary: dict[str, object]) -> float:
    sessions = [sid for scenario in summary["scenarios"] for sid in scenario["sessions"] if sid]  # type: ignore[attr-defined]
    total = 0.0
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for session_id in sessions:
            cost = http.get(f"/sessions/{session_id}").json().get("cost") or {}
            total += float(cost.get("session_seconds") or 0.0)
    return total


RESERVE_WAIT = 300.0  # the warm bots' first start: Pipecat and the recogniser imported, on a loaded machine


def wait_for_reserve(base_url: str, bots: int) -> None:
    """Until `bots` reserve bots are idle (GET /status): the first calls of a run would otherwise start
    cold bots of their own, and the run's figures would mix cold and warm starts."""
    deadline = time.monotonic() + RESERVE_WAIT
    idle = 0
    with httpx.Client(base_url=base_url, timeout=10) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                idle = int(http.get("/status").json()["reserve"]["by_state"].get("idle", 0))
            if idle >= bots:
                return
            time.sleep(1.0)
    raise SystemExit(f"only {idle} of {bots} reserve bots idle after {RESERVE_WAIT:g} s: no run on a half-warm reserve")


def run_arguments(description: str | None, runs: int) -> argparse.ArgumentParser:
    """The options every bench of the suite takes: `--repeat`, `--concurrency` and `--runs`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--runs", type=int, default=runs)
    return parser


def main() -> None:
    parser = run_arguments(__doc__, runs=2)
    parser.add_argument("--reserve", type=int, default=None, help="warm bots kept (default: --concurrency)")
    args = parser.parse_args()
    reserve = args.concurrency if args.reserve is None else args.reserve
    warm = {"RESERVE_MIN_IDLE": str(reserve)} if reserve else {"RESERVE_MAX_IDLE": "0"}
    env = {"BOT_FILE": str(BOT_FILE), **warm}
    with tempfile.TemporaryDirectory() as logs, run_dispatcher(Path(logs), env) as dispatcher:
        for run in range(1, args.runs + 1):
            wait_for_reserve(dispatcher.base_url, reserve)  # also after a run: its bots were used up
            load_before = os.getloadavg()[0]
            wall, cpu, summary = eval_run(dispatcher.base_url, args.repeat, args.concurrency)
            seconds = call_seconds(dispatcher.base_url, summary)
            minutes = seconds / 60
            print(f"run {run}: {summary['passed']}/{summary['runs']} calls passed, wall {wall:.0f} s, "
                  f"calls {minutes:.1f} min in all, caller CPU {cpu:.1f} s = "
                  f"{cpu / minutes if minutes else float('nan'):.1f} CPU s per call minute "
                  f"({cpu / wall:.2f} of a core over the run); "
                  f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
            print(f"where the time went (mean call {mean_call(summary):.1f} s):", flush=True)
            for line in breakdown(summary, wall, args.concurrency):
                print(line, flush=True)
            for scenario in summary["scenarios"]:  # type: ignore[attr-defined]
                for failure in scenario["failures"]:
                    print(f"  failed: {scenario['scenario']}: {failure['failure']}", flush=True)


if __name__ == "__main__":
    main()
