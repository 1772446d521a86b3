"""The `voicefleet` command's own start, timed (never asserted), with and without bytecode: `voicefleet
--help`, and `voicefleet config check --stack NAME` first (the stack's program runs) and repeated (the
kept answer, stacks/tools/config_cache.py), CPU (user + system of the command and its children) and
wall seconds, median of N runs.

    uv run --all-groups python -m bench.cli_start_time --runs 5 [--stack aws-prod]

`with bytecode`: the install as documented (`uv sync --all-groups --compile-bytecode`, docs/cli.md)
and the checkout's own modules compiled by one uncounted run.
`without`: every module compiled from source on every run, as an install without bytecode under
`PYTHONDONTWRITEBYTECODE=1` runs (PYTHONPYCACHEPREFIX points at an empty folder no run may write to,
so no `.pyc` of the venv or the checkout is read). The runs alternate between the two, so both meet the
same load on a shared machine; compare the CPU figures there, the wall includes waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.config_check_time import ROOT, children_cpu

VOICEFLEET = str(Path(sys.executable).with_name("voicefleet"))
DEADLINE_SECONDS = 180


def one_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `argv` in the checkout, with `env`."""
    import subprocess
    import time

    cpu, began = children_cpu(), time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=DEADLINE_SECONDS, check=False)
    return children_cpu() - cpu, time.perf_counter() - began


def environment(bytecode: bool, cache_home: Path, no_pyc: Path) -> dict[str, str]:
    env = dict(os.environ) | {"XDG_CACHE_HOME": str(cache_home)}
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(no_pyc)}
    return env


def shown(measured: list[tuple[float, float]]) -> str:
    cpus, walls = zip(*measured, strict=True)
    return (f"{statistics.median(cpus):5.2f} ({min(cpus):.2f}–{max(cpus):.2f})   "
            f"{statistics.median(walls):5.2f} ({min(walls):.2f}–{max(walls):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="aws-prod")
    args = parser.parse_args()
    check = [VOICEFLEET, "config", "check", "--stack", args.stack]
    cases = {"voicefleet --help": ([VOICEFLEET, "--help"], False), f"config check --stack {args.stack}, first": (
        check, True), f"config check --stack {args.stack}, repeat": (check, False)}
    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each, alternating with and without bytecode")
    print(f"{'command':<42} {'bytecode':<9} {'CPU s (median, min–max)':<24} wall s (median, min–max)")
    with tempfile.TemporaryDirectory(prefix="cli-start-bench-") as work:
        kept, no_pyc = Path(work) / "kept", Path(work) / "no-pyc"
        no_pyc.mkdir()
        no_pyc.chmod(0o500)  # nothing is written there: every run without bytecode compiles from source
        one_run(check, environment(True, kept, no_pyc))  # compiles the checkout, keeps the stack's answer
        for name, (argv, first) in cases.items():
            measured: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(args.runs):
                for bytecode in (True, False):
                    with tempfile.TemporaryDirectory(prefix="cli-start-bench-") as fresh:
                        home = Path(fresh) if first else kept
                        measured[bytecode].append(one_run(argv, environment(bytecode, home, no_pyc)))
            for bytecode, runs in measured.items():
                print(f"{name:<42} {'with' if bytecode else 'without':<9} {shown(runs)}")


if __name__ == "__main__":
    main()
