"""The bot's start-up: spawn → `ready` (wall and CPU), and where it goes, step by step.

1. Spawn → `ready`: fresh `python -m bot --port 0` processes (as the local provider spawns them),
   the wall time until the parent reads the `ready` line and the bot's CPU time (/proc) then, for
   each bytecode arm of bench/bot_spawn.py (`compiled` as the image ships, `source` as a venv
   without `.pyc` under `PYTHONDONTWRITEBYTECODE`), alternating arms run by run.
2. The steps: `python -m bot --check` under `-X importtime` with compiled bytecode. Imports are
   grouped by what they are for; each group's time is the self time of its modules (so nothing is
   counted twice), and the rest of the run (the VAD's ONNX session, building the pipeline, the
   interpreter) is what is left of the process's CPU time. Shares are more stable than
   milliseconds on a busy machine.

    uv run --all-groups python -m bench.bot_import_steps --runs 9 --steps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.bot_spawn import ARMS, REPO, Start, bot_env, prepare_caches, spawn_until_ready

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
    ("the bot's own modules", ("bot", "botchannel", "voicefleet_settings")),
    ("stdlib and other", ("",)),
)


def group_of(module: str) -> str:
    for name, prefixes in GROUPS:
        if any(module == p or module.startswith(p + ".") or p == "" for p in prefixes):
            return name
    return "stdlib and other"


# The bot's own start-up order (bot/__main__.py, bot/app.py), with the CPU clock read after the
# imports (the host's and the default bot file's, with the Silero model loaded) and after `--check`.
PROBE = """
import gc, resource, sys
gc.disable()
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
from bot import dataclass_code
dataclass_code.install()
from bot.lazy_imports import defer_unused_imports
defer_unused_imports()
from bot import app, webrtc_mode
from bot.config import load_config
config = load_config(['--check'], {})
user_bot = app.warm_up(config)
dataclass_code.finish()
imported = cpu()
from bot.events import EventWriter
from bot.shutdown import run_bounded
gc.enable()
run_bounded(webrtc_mode.check(config, user_bot, EventWriter('probe')))
print('CPU', imported, cpu() - imported, file=sys.stderr)
"""


def one_run(python: str, pycache: Path) -> tuple[Counter[str], float, float]:
    env = {**bot_env(pycache), "OPENBLAS_NUM_THREADS": "1"}  # as bot.app.main sets it
    command = [python, "-X", "importtime", "-c", PROBE]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    groups: Counter[str] = Counter()
    cpu = check = 0.0
    for line in result.stderr.splitlines():
        if line.startswith("CPU "):
            cpu, check = (float(x) * 1000 for x in line.split()[1:3])
        elif line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            groups[group_of(name)] += int(self_us)  # µs
    if not cpu:
        raise RuntimeError(f"the probe failed: {result.stderr[-2000:]}")
    return groups, cpu, check


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]"


def print_starts(starts: dict[str, list[Start]], loads: tuple[float, float]) -> None:
    n = len(next(iter(starts.values())))
    print(f"spawn → ready, s, median [min–max], n={n} per arm; load avg {loads[0]:.2f} → {loads[1]:.2f}")
    print("(wall − queued: the wall time less the bot's main thread waiting for a core)")
    print(f"{'bytecode':10} {'wall':>22} {'CPU (user+sys)':>22} {'wall − queued':>22}")
    for arm, runs in starts.items():
        walls, cpus = spread([r.wall_s for r in runs]), spread([r.cpu_s for r in runs])
        print(f"{arm:10} {walls:>22} {cpus:>22} {spread([r.unqueued_s for r in runs]):>22}")


def print_steps(runs: list[tuple[Counter[str], float, float]]) -> None:
    cpu = statistics.median(c for _, c, _ in runs)
    check = statistics.median(k for _, _, k in runs)
    print(f"\nthe steps (compiled bytecode, `--check` under -X importtime), {len(runs)} fresh processes, medians")
    print("(import groups: share of the import wall time, times the imports' CPU time)")
    print(f"{'step':40} {'CPU ms':>8} {'share':>7}")
    shares = {name: statistics.median(g[name] / g.total() for g, _, _ in runs) for name, _ in GROUPS}
    for name, share in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"{name:40} {share * cpu:8.0f} {share * cpu / (cpu + check):7.0%}")
    print(f"{'VAD session + one pipeline (--check)':40} {check:8.0f} {check / (cpu + check):7.0%}")
    print(f"{'total CPU to ready':40} {cpu + check:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="spawn → ready starts per bytecode arm")
    parser.add_argument("--steps", type=int, default=3, help="-X importtime runs for the breakdown (0: none)")
    parser.add_argument("--arms", default=",".join(ARMS), help="bytecode arms, comma-separated")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run the bot with")
    args = parser.parse_args()
    arms = [arm for arm in args.arms.split(",") if arm]
    if not arms or not set(arms) <= set(ARMS):
        parser.error(f"--arms: choose from {', '.join(ARMS)}")
    with tempfile.TemporaryDirectory(prefix="bot-pycache-") as root:
        caches = prepare_caches(args.python, Path(root))
        loads = os.getloadavg()[0]
        starts: dict[str, list[Start]] = {arm: [] for arm in arms}
        for _ in range(args.runs):
            for arm in arms:
                starts[arm].append(spawn_until_ready(args.python, bot_env(caches[arm])))
        print_starts(starts, (loads, os.getloadavg()[0]))
        if args.steps:
            print_steps([one_run(args.python, caches["compiled"]) for _ in range(args.steps)])


if __name__ == "__main__":
    main()
