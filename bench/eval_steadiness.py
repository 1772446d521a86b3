"""How steady the booking line's eval is beside load: the unchanged bot, an independent suite of
eleven scenarios (bench/eval_steadiness_suite/, written from docs/evals.md alone: ten WebRTC calls and
a Plivo call with a keypad turn), `--repeat 3`, run after run.

    uv run --all-groups python -m bench.eval_steadiness [--runs 10] [--repeat 3] [--concurrency 2] [--out DIR]

Starts a local dispatcher (`BOT_FILE=examples/booking/bot.py`, `RECORDING_TRANSCRIPT=on` for the phone
call's words, stand-in Plivo credentials passed to the bots, a warm reserve of `--concurrency` bots),
then runs `voicefleet eval bench/eval_steadiness_suite --repeat 3 --json` as its own process, `--runs`
times. For each run it prints whether the suite passed whole, its calls passed, the inconclusive
calls (a caller that fell behind real time, or a failure where the bot's host did), each failure as
the command names it, how far each call's bot host fell behind in its worst turn, and the load
average before and after (the machine is shared); each run's `--json` is kept in `--out`.
Asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.eval_suite import BOT_FILE, ROOT, run_arguments, wait_for_reserve
from tests.support.processes import run_dispatcher

SUITE = ROOT / "bench" / "eval_steadiness_suite"
# Pipecat's Plivo serializer hangs up through Plivo's REST API and wants these; nothing reaches Plivo
# (the call is the eval's own stream), so stand-ins do.
PHONE = {"PLIVO_AUTH_ID": "MA0000000000000000", "PLIVO_AUTH_TOKEN": "stand-in",
         "LOCAL_BOT_ENV": "PLIVO_AUTH_ID,PLIVO_AUTH_TOKEN"}


def one_run(base_url: str, repeat: int, concurrency: int) -> tuple[int, float, dict[str, object]]:
    """(exit code, wall seconds, the --json summary) of one `voicefleet eval` of the suite."""
    command = [str(Path(sys.executable).parent / "voicefleet"), "eval", str(SUITE), "--url", base_url,
               "--repeat", str(repeat), "--concurrency", str(concurrency), "--json"]  # fmt: skip
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        summary = json.loads(done.stdout)
    except ValueError:
        summary = {"error": done.stdout[-2000:] + done.stderr[-4000:]}
    return done.returncode, time.monotonic() - began, summary


def main() -> None:
    parser = run_arguments(__doc__, runs=10)
    parser.add_argument("--out", type=Path, default=None, help="folder for each run's --json")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="eval-steadiness-"))
    out.mkdir(parents=True, exist_ok=True)
    whole = 0
    with tempfile.TemporaryDirectory() as logs:
        # The transcripts go beside the logs: by default a local dispatcher keeps them in ./recordings.
        env = {"BOT_FILE": str(BOT_FILE), "RESERVE_MIN_IDLE": str(args.concurrency), "RECORDING_TRANSCRIPT": "on",
               "RECORDING_DESTINATION": str(Path(logs) / "recordings"), **PHONE}
        with run_dispatcher(Path(logs), env) as dispatcher:
            for run in range(1, args.runs + 1):
                wait_for_reserve(dispatcher.base_url, args.concurrency)
                load_before = os.getloadavg()[0]
                code, wall, summary = one_run(dispatcher.base_url, args.repeat, args.concurrency)
                (out / f"run{run:02d}.json").write_text(json.dumps(summary, indent=1))
                whole += code == 0
                _report(run, code, wall, summary, load_before)
    print(f"{whole} of {args.runs} runs passed whole; each run's --json in {out}", flush=True)



def _report(run: int, code: int, wall: float, summary: dict[str, Any], load_before: float) -> None:
    """One run's line, and each failed or inconclusive call's."""
    late = summary.get("inconclusive") or {}
    calls = summary.get("calls")
    calls = calls if isinstance(calls, dict) else {}
    print(f"run {run}: exit {code}, verdict {summary.get('verdict')}, {summary.get('passed')}/"
          f"{summary.get('runs')} calls passed, {calls.get('inconclusive')} inconclusive (bot host behind), "
          f"{calls.get('failed')} failed; caller behind in "
          f"{late.get('calls', 0) if isinstance(late, dict) else late}, wall {wall:.0f} s, "
          f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f}", flush=True)
    for scenario in summary.get("scenarios") or []:
        for failure in scenario["failures"]:
            print(f"  failed: {scenario['scenario']}: {failure['failure']}", flush=True)
        for call in scenario.get("inconclusive") or []:
            print(f"  inconclusive: {scenario['scenario']}: {call['reason']}: {call['failure']}", flush=True)
        behind = [t["bot_behind_s"] for t in scenario.get("timings") or [] if t.get("bot_behind_s") is not None]
        if behind:
            print(f"  {scenario['scenario']}: the bot host's most behind in a turn, per call: {behind}",
                  flush=True)
    if "error" in summary:
        print(f"  no summary: {summary['error']}", flush=True)


if __name__ == "__main__":
    main()
