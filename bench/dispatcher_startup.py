"""The dispatcher's start-up, measured (never asserted): spawn `python -m dispatcher --port 0` (local
mode, the defaults) → its "open http://…" line, wall and CPU time, and its RSS then. Run against two
checkouts to compare a change, alternating so both meet the same load:

    uv run python -m bench.dispatcher_startup --runs 7 [--other /path/to/another/checkout]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 60


def one_start(checkout: Path) -> tuple[float, float, int]:
    """(seconds to the open line, CPU seconds spent by then, RSS in KiB then)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | {"PYTHONPATH": str(checkout)}
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "dispatcher", "--port", "0"], cwd=checkout, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("voicefleet: open http://"):
                break
            if time.perf_counter() - began > DEADLINE_SECONDS:
                raise TimeoutError("no open line")
        wall = time.perf_counter() - began
        stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        return wall, cpu, rss
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def summary(values: list[float], unit: str, scale: float = 1.0) -> str:
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):.0f} {unit} [{min(scaled):.0f}–{max(scaled):.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--other", type=Path, help="another checkout, measured alternately")
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.other.resolve()] if args.other else [])
    results: dict[Path, list[tuple[float, float, int]]] = {c: [] for c in checkouts}
    for _ in range(args.runs):
        for checkout in checkouts:
            results[checkout].append(one_start(checkout))
    print(f"load average {os.getloadavg()[0]:.1f}")
    for checkout, runs in results.items():
        walls, cpus, rsss = zip(*runs, strict=True)
        print(f"{checkout}: wall {summary(list(walls), 'ms', 1000)}, CPU {summary(list(cpus), 'ms', 1000)}, "
              f"RSS {summary([r / 1024 for r in rsss], 'MiB')}")


if __name__ == "__main__":
    main()
