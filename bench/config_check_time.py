"""`voicefleet config check --stack NAME`, timed (never asserted): for each example stack, the CPU
seconds (user + system) and the wall seconds of `python -m dispatcher.serving.config_command check
--stack NAME` (the process `voicefleet config` spawns, and its own child), median of N runs; with `--cli`,
of `voicefleet config check --stack NAME` itself (the CLI's own process counted too).

    uv run --all-groups python -m bench.config_check_time --runs 5 [--stack aws-prod ...] [--cold] [--cli]
    uv run --all-groups python -m bench.config_check_time --cold --other /path/to/another/checkout

`--other` measures another checkout too, alternating run by run so both meet the same load (the
figures of a change against its base: on a shared machine load moves the CPU figures as well).

The CPU figure is the one to compare on a shared machine: the wall includes waiting for a core. A
run's CPU is the growth of RUSAGE_CHILDREN over it: the command and every process it waited for.
The check keeps the program's answer (stacks/tools/config_cache.py): by default each stack gets a
cache folder of its own (XDG_CACHE_HOME, never the user's), filled by one uncounted run, so the runs
measured read the kept answer (a second check of an unchanged stack); `--cold` gives every run a fresh
folder, so each one runs the stack's program (a first check, or one after an edit).
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
# The console script `voicefleet` runs main() of this module (pyproject.toml [project.scripts]).
CLI_COMMAND = (sys.executable, "-c", "from voicefleet.main import main; main()", "config", "check", "--stack")
DEADLINE_SECONDS = 120


def example_stacks() -> list[str]:
    """Every stacks/Pulumi.<name>.yaml."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_check(stack: str, cache_home: Path, checkout: Path = ROOT, *, cli: bool = False) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, exit code) of one check of `stack` in `checkout`, its cache under
    `cache_home`; `cli`: through the `voicefleet` command (the checkout's src/ first on the path)."""
    path = os.pathsep.join([str(checkout / "src"), str(checkout)] if cli else [str(checkout)])
    env = dict(os.environ) | {"XDG_CACHE_HOME": str(cache_home), "PYTHONPATH": path}
    cpu, began = children_cpu(), time.perf_counter()
    done = subprocess.run([*(CLI_COMMAND if cli else COMMAND), stack], cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=DEADLINE_SECONDS, check=False)
    return children_cpu() - cpu, time.perf_counter() - began, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", action="append", help="a stack (default: every example stack)")
    parser.add_argument("--cold", action="store_true", help="a fresh cache folder for every run: the program runs")
    parser.add_argument("--other", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--cli", action="store_true", help="through `voicefleet config check`, its process counted")
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.other.resolve()] if args.other else [])
    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each; "
          f"{'cold: every run runs the program' if args.cold else 'kept: every run reads the kept answer'}"
          f"{'; through the voicefleet command' if args.cli else ''}")
    print(f"{'stack':<20} {'CPU s (median, min–max)':<26} {'wall s (median, min–max)':<26} exit  checkout")
    for stack in args.stack or example_stacks():
        runs: dict[Path, list[tuple[float, float, int]]] = {checkout: [] for checkout in checkouts}
        with tempfile.TemporaryDirectory(prefix="config-check-bench-") as kept:
            for checkout in checkouts if not args.cold else []:
                one_check(stack, Path(kept) / checkout.name, checkout, cli=args.cli)  # fills the cache: not counted
            for _ in range(args.runs):
                for checkout in checkouts:
                    with tempfile.TemporaryDirectory(prefix="config-check-bench-") as fresh:
                        home = Path(fresh) if args.cold else Path(kept) / checkout.name
                        runs[checkout].append(one_check(stack, home, checkout, cli=args.cli))
        for checkout, measured in runs.items():
            cpus, walls, codes = zip(*measured, strict=True)
            print(f"{stack:<20} {statistics.median(cpus):5.2f} ({min(cpus):.2f}–{max(cpus):.2f}){'':<10} "
                  f"{statistics.median(walls):5.2f} ({min(walls):.2f}–{max(walls):.2f}){'':<10} "
                  f"{','.join(sorted({str(code) for code in codes}))}     {checkout}")
    # The load moves over a run of minutes, and with it the CPU figures (a busy core's caches are another's too).
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
