"""Where the bot's start-up goes, step by step: `python -m bot --check` under `-X importtime`.

Each run is a fresh process (as the local provider spawns bots). Imports are grouped by what
they are for; each group's time is the self time of its modules (so nothing is counted twice),
and the rest of the run (the VAD's ONNX session, building the pipeline, the interpreter) is what
is left of the process's CPU time. Shares are more stable than milliseconds on a busy machine.

    uv run python -m bench.bot_import_steps --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# First match wins: (group, module prefixes).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("numpy", ("numpy",)),
    ("onnxruntime (Silero VAD)", ("onnxruntime",)),
    ("av (codecs)", ("av",)),
    ("aiortc + aioice + crypto", ("aiortc", "aioice", "pylibsrtp", "cryptography", "OpenSSL", "pyee", "google_crc32c")),
    ("pydantic", ("pydantic", "pydantic_core", "annotated_types")),
    ("pipecat RTVI (+ LLM service base)", ("pipecat.processors.frameworks.rtvi", "pipecat.services")),
    ("pipecat tracing (opentelemetry)", ("pipecat.utils.tracing", "opentelemetry")),
    ("pipecat frames", ("pipecat.frames",)),
    ("pipecat transports", ("pipecat.transports",)),
    ("pipecat, the rest", ("pipecat",)),
    ("websockets (control channel)", ("websockets",)),
    ("loguru", ("loguru",)),
    ("the bot's own modules", ("bot", "botchannel")),
    ("stdlib and other", ("",)),
)


def group_of(module: str) -> str:
    for name, prefixes in GROUPS:
        if any(module == p or module.startswith(p + ".") or p == "" for p in prefixes):
            return name
    return "stdlib and other"


# The bot's own start-up order (bot/__main__.py, bot/app.py), with the CPU clock read after the
# imports and after `--check` (the VAD's ONNX session and one pipeline built).
PROBE = """
import gc, resource, sys
gc.disable()
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
from bot.lazy_imports import defer_unused_imports
defer_unused_imports()
from bot import app, webrtc_mode
imported = cpu()
from bot.config import load_config
from bot.events import EventWriter
from bot.shutdown import run_bounded
gc.enable()
run_bounded(webrtc_mode.check(load_config(['--check'], {}), EventWriter('probe')))
print('CPU', imported, cpu() - imported, file=sys.stderr)
"""


def one_run() -> tuple[Counter[str], float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}  # as bot.app.main sets it
    command = [sys.executable, "-X", "importtime", "-c", PROBE]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    groups: Counter[str] = Counter()
    cpu = check = 0.0
    for line in result.stderr.splitlines():
        if line.startswith("CPU "):
            cpu, check = (float(x) * 1000 for x in line.split()[1:3])
        elif line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            groups[group_of(name)] += int(self_us) / 1000
    if not cpu:
        raise RuntimeError(f"the probe failed: {result.stderr[-2000:]}")
    return groups, cpu, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    cpu = statistics.median(c for _, c, _ in runs)
    check = statistics.median(k for _, _, k in runs)
    print(f"the bot's start-up in {args.runs} fresh processes, medians; load avg {os.getloadavg()[0]:.1f}")
    print("(import groups: share of the import wall time, times the imports' CPU time)")
    print(f"{'step':40} {'CPU ms':>8} {'share':>7}")
    shares = {name: statistics.median(g[name] / sum(g.values()) for g, _, _ in runs) for name, _ in GROUPS}
    for name, share in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"{name:40} {share * cpu:8.0f} {share * cpu / (cpu + check):7.0%}")
    print(f"{'VAD session + one pipeline (--check)':40} {check:8.0f} {check / (cpu + check):7.0%}")
    print(f"{'total CPU to ready':40} {cpu + check:8.0f}")


if __name__ == "__main__":
    main()
