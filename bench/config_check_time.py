"""`voicefleet config check --stack NAME`, timed (never asserted): for each example stack, the CPU
seconds (user + system) and the wall seconds of `python -m dispatcher.serving.config_command check
--stack NAME` (the process `voicefleet config` spawns, and its own child), median of N runs.

    uv run --all-groups python -m bench.config_check_time --runs 5 [--stack aws-prod ...] [--cold]

The CPU figure is the one to compare on a shared machine: the wall includes waiting for a core. A
run's CPU is the growth of RUSAGE_CHILDREN over it: the command and every process it waited for.
`--cold` points XDG_CACHE_HOME at a fresh folder for every run, so no run reads what an earlier one
left (the figure of a first run on a new machine); without it the user's cache is used as it is.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = (sys.executable, "-m", "dispatcher.serving.config_command", "check", "--stack")
DEADLINE_SECONDS = 120


def example_stacks() -> list[str]:
    """Every stacks/Pulumi.<name>.yaml."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_check(stack: str, cache_home: Path | None) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, exit code) of one check of `stack`."""
    env = dict(os.environ) | ({"XDG_CACHE_HOME": str(cache_home)} if cache_home else {})
    cpu, began = children_cpu(), time.perf_counter()
    done = subprocess.run([*COMMAND, stack], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=DEADLINE_SECONDS, check=False)
    return children_cpu() - cpu, time.perf_counter() - began, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", action="append", help="a stack (default: every example stack)")
    parser.add_argument("--cold", action="store_true", help="a fresh cache folder for every run")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each; "
          f"{'cold (a fresh cache each run)' if args.cold else 'the user cache as it is'}")
    print(f"{'stack':<20} {'CPU s (median, min–max)':<26} {'wall s (median, min–max)':<26} exit")
    for stack in args.stack or example_stacks():
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="config-check-bench-") as fresh:
                runs.append(one_check(stack, Path(fresh) if args.cold else None))
        cpus, walls, codes = zip(*runs, strict=True)
        print(f"{stack:<20} {statistics.median(cpus):5.2f} ({min(cpus):.2f}–{max(cpus):.2f}){'':<10} "
              f"{statistics.median(walls):5.2f} ({min(walls):.2f}–{max(walls):.2f}){'':<10} "
              f"{','.join(sorted({str(code) for code in codes}))}")


if __name__ == "__main__":
    main()
