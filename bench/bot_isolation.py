"""What keeping local bots apart costs at start-up, in one run.

    uv run --all-groups python -m bench.bot_isolation --runs 200

Every local bot is started by dispatcher/machines/local/spawn.py through isolated_exec.py, which asks for the
parent-death signal and enters a Landlock domain of its own before it becomes the bot, and
`python -m bot` makes itself non-dumpable (and, as root, drops every capability) as its first act
(bot/hardening.py); its environment is an allow list (bot_env.py). Measured, medians [min–max]
over alternating runs:

- spawn → exit of `python -S -c pass` started directly, through the launcher with the
  parent-death signal only (as on a kernel without Landlock), and through the launcher with its
  domain: the differences are what every local bot's start pays;
- `harden_process()` itself, timed inside a fresh interpreter, and importing it (ctypes, which the
  bot's imports load anyway);
- building a bot's environment from this process's (the allow list).

Prints the kernel's Landlock ABI, the user it ran as and the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dispatcher.machines.local import landlock
from dispatcher.machines.local.bot_env import inherited
from dispatcher.machines.local.isolation import BotIsolation
from dispatcher.machines.local.spawn import spawn_bot

REPO = Path(__file__).resolve().parents[1]
HARDEN = ("import time; t0 = time.perf_counter(); from bot.hardening import harden_process; "
          "t1 = time.perf_counter(); harden_process(); t2 = time.perf_counter(); "
          "print((t1 - t0) * 1000, (t2 - t1) * 1000)")


PROBE = [sys.executable, "-S", "-c", "pass"]


def spawn_ms(isolation: BotIsolation | None) -> float:
    """One spawn → exit of PROBE: directly (None), or as every local bot starts (dispatcher/machines/local/spawn.py)."""
    started = time.perf_counter()
    if isolation is None:
        subprocess.run(PROBE, check=True)
    else:
        asyncio.run(_spawned(isolation))
    return (time.perf_counter() - started) * 1000


async def _spawned(isolation: BotIsolation) -> None:
    kept, _peer = socket.socketpair()  # stands for the launch socket every bot keeps
    with kept, _peer:
        process = await spawn_bot(isolation, PROBE, {"PATH": os.defpath}, keep_fd=kept.fileno(), spawned=lambda _: None)
        await process.communicate()
        assert process.returncode == 0


def harden_ms() -> tuple[float, float]:
    """(importing bot.hardening with ctypes, the call) in a fresh interpreter, as `python -m bot` does first."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", HARDEN], env=env, capture_output=True, text=True, check=True).stdout
    imported, called = out.split()
    return float(imported), float(called)


def environment_us(runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        inherited(os.environ, ("DEEPGRAM_API_KEY", "OPENAI_API_KEY"))
    return (time.perf_counter() - started) / runs * 1e6


def shown(samples: list[float], unit: str) -> str:
    return f"{statistics.median(samples):.2f} {unit} [{min(samples):.2f}–{max(samples):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    isolation = BotIsolation.for_this_host()
    arms = {"started directly": None,
            "launcher, parent-death signal only": BotIsolation(abi=0),
            "launcher, signal and Landlock domain": isolation}
    samples: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(args.runs):
        for arm, launcher in arms.items():
            samples[arm].append(spawn_ms(launcher))
    hardening = [harden_ms() for _ in range(max(5, args.runs // 10))]
    print(f"Landlock ABI {landlock.abi_version()} ({'a domain per bot' if isolation.sandboxed else 'none'}), "
          f"uid {os.geteuid()}, load {os.getloadavg()[0]:.2f}, {args.runs} runs")
    direct = statistics.median(samples["started directly"])
    for arm, taken in samples.items():
        print(f"spawn → exit, {arm:<37}: {shown(taken, 'ms')}  ({statistics.median(taken) - direct:+.2f} ms)")
    print(f"harden_process() in the bot             : {shown([c for _, c in hardening], 'ms')}")
    print(f"  importing it first (ctypes, which numpy and aiortc import later anyway): "
          f"{shown([i for i, _ in hardening], 'ms')}")
    print(f"the bot's allow-listed environment      : {environment_us(2000):.1f} µs")


if __name__ == "__main__":
    main()
