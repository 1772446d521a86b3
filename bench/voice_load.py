"""`voicefleet loadtest` against a local dispatcher with real parrot bots, at several rates: its
figures set beside the dispatcher's own timeline, and what the load generator itself cost.

    uv run --all-groups python -m bench.voice_load --runs 1/min:3m,5/min:2m,20/min:1m

Three processes per run: the dispatcher (`python -m dispatcher`, MACHINES=local, the parrot as
BOT_FILE; `RESERVE_MAX_IDLE=0` unless `--warm`, so every start is cold and its seconds are the bot's
own start-up), its bots (one process each), and `voicefleet loadtest` as any user runs it. Prints a
row per rate (time to the media connection, to first audio and to ready, caller against timeline,
turn latency, the generator's CPU per session and by phase, its share of a core and its event
loop's lag) and the load average before and after; keeps each run's result.json and chart.png under
`--out` (`bench/voice_load_table.py` makes the docs' tables of them). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.examples import PARROT
from tests.support.processes import run_dispatcher

VOICEFLEET = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "voicefleet"


def run_one(base_url: str, rate: str, duration: str, out: Path, concurrency: int, nice: int) -> dict[str, Any]:
    # A negative niceness keeps the generator in real time on a host whose load is past its cores.
    command = [*(["nice", "-n", str(nice)] if nice else []), str(VOICEFLEET), "loadtest", "--url", base_url,
               "--rate", rate, "--duration", duration, "--concurrency", str(concurrency), "--max-sessions", "1000",
               "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEFLEET_")}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if not (out / "result.json").exists():
        raise SystemExit(f"loadtest wrote no result (exit {finished.returncode}):\n{finished.stderr}")
    return dict(json.loads((out / "result.json").read_text()), exit_code=finished.returncode)


def row(rate: str, result: dict[str, Any]) -> str:
    summary, own = result["summary"], result["load_generator"]
    seconds, agree = summary["seconds"], summary["timeline_agreement"]

    def pair(name: str) -> str:
        figures, versus = seconds[name], agree.get(name)  # compared only where both clocks time one interval
        if figures is None:
            return "-"
        text = f"p50 {figures['p50']:.2f} p95 {figures['p95']:.2f}"
        if versus is not None:
            text += (f" (timeline p50 {versus['timeline_p50']:.2f}, diff p50 {versus['difference_p50']:+.3f} s, "
                     f"rel diff p50 {versus.get('relative_difference_p50') or 0:.1%} "
                     f"max {versus['relative_difference_max']:.1%})")
        return text

    counts = summary["sessions"]
    return (f"{rate:>7}: {counts['ok']}/{counts['placed']} ok, refused {summary['refused_by_code'] or 0}, "
            f"failed {summary['failed_by_code'] or 0}, dropped {counts['dropped']}\n"
            f"         connected {pair('connected')}\n"
            f"         first audio {pair('first_audio')}\n         ready {pair('ready')}\n"
            f"         turn {pair('turn')}\n"
            f"         generator {own['cpu_seconds_per_session']} CPU s/session, "
            f"{own['cpu_share_of_one_core']:.1%} of a core, loop lag p99 {own['loop_lag_p99_seconds']} s\n"
            f"         generator CPU s/session by phase {own.get('cpu_seconds_per_session_by_phase')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="1/min:3m,5/min:2m,20/min:1m", help="RATE:DURATION, comma-separated")
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--warm", action="store_true", help="keep the local default reserve (warm starts)")
    parser.add_argument("--generator-nice", type=int, default=0,
                        help="the generator's niceness (negative: ahead of the bots and all else; needs the right)")
    parser.add_argument("--out", type=Path, default=None, help="where each run's result and chart go")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="voice-load-"))
    env = {"BOT_FILE": str(PARROT / "bot.py"), "LOG_LEVEL": "warning", "MAX_CONCURRENT_SESSIONS": "100"}
    if not args.warm:
        env["RESERVE_MAX_IDLE"] = "0"
    print(f"load avg before {'/'.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; "
          f"{'warm' if args.warm else 'cold'} starts; results under {out}", flush=True)
    for spec in args.runs.split(","):
        rate, duration = spec.split(":")
        target = out / rate.replace("/", "-per-")
        target.mkdir(parents=True, exist_ok=True)
        with run_dispatcher(target, env) as dispatcher:
            began = time.monotonic()
            print(f"{rate} for {duration}: load avg before {'/'.join(f'{x:.2f}' for x in os.getloadavg())}",
                  flush=True)
            result = run_one(dispatcher.base_url, rate, duration, target, args.concurrency, args.generator_nice)
        print(row(rate, result), f"\n         ({time.monotonic() - began:.0f} s; load avg now "
              f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)


if __name__ == "__main__":
    main()
