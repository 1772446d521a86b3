"""What keeping local bots apart costs at start-up, in one run.

    uv run --all-groups python -m bench.bot_isolation --runs 200

The local launcher (dispatcher/machines/local/isolation.py) gives each bot a Landlock domain of its
own in the forked child before `exec`, and `python -m bot` makes itself non-dumpable (and, as
root, drops every capability) as its first act (bot/hardening.py); its environment is an allow
list (bot_env.py). Measured, medians [min–max] over alternating runs:

- fork → exec → exit of `python -S -c pass` with the launcher's `preexec_fn` before the change
  (the parent-death signal only) and with the isolated one (plus `no_new_privs` and the domain):
  the difference is what every local bot's start pays, and the isolated `preexec_fn` timed in a
  forked child (the same work without the noise of a process start);
- `harden_process()` itself, timed inside a fresh interpreter, and importing it (ctypes, which the
  bot's imports load anyway);
- building a bot's environment from this process's (the allow list).

Prints the kernel's Landlock ABI, the user it ran as and the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dispatcher.machines.local import landlock
from dispatcher.machines.local.bot_env import inherited
from dispatcher.machines.local.isolation import BotIsolation
from dispatcher.machines.local.parent_death import die_with_parent

REPO = Path(__file__).resolve().parents[1]
HARDEN = ("import time; t0 = time.perf_counter(); from bot.hardening import harden_process; "
          "t1 = time.perf_counter(); harden_process(); t2 = time.perf_counter(); "
          "print((t1 - t0) * 1000, (t2 - t1) * 1000)")


def spawn_ms(preexec: Callable[[], None]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", "pass"], preexec_fn=preexec, check=True)
    return (time.perf_counter() - started) * 1000


def restrict_us(isolation: BotIsolation) -> float:
    """The launcher's own work in the child (parent-death signal, no_new_privs, the domain), timed there."""
    read, write = os.pipe()
    setup = isolation.child_setup(os.getpid())
    child = os.fork()
    if child == 0:
        started = time.perf_counter()
        setup()
        os.write(write, str((time.perf_counter() - started) * 1e6).encode())
        os._exit(0)
    os.close(write)
    elapsed = float(os.read(read, 64))
    os.close(read)
    os.waitpid(child, 0)
    return elapsed


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
    before = functools.partial(die_with_parent, os.getpid())  # the launcher's preexec before isolation
    isolated = isolation.child_setup(os.getpid())
    plain: list[float] = []
    sandboxed: list[float] = []
    for _ in range(args.runs):
        plain.append(spawn_ms(before))
        sandboxed.append(spawn_ms(isolated))
    in_child = [restrict_us(isolation) for _ in range(args.runs)]
    hardening = [harden_ms() for _ in range(max(5, args.runs // 10))]
    print(f"Landlock ABI {landlock.abi_version()} ({'a domain per bot' if isolation.sandboxed else 'none'}), "
          f"uid {os.geteuid()}, load {os.getloadavg()[0]:.2f}, {args.runs} runs")
    print(f"spawn → exit, parent-death signal only : {shown(plain, 'ms')}")
    print(f"spawn → exit, isolated (Landlock domain): {shown(sandboxed, 'ms')}")
    difference = statistics.median(sandboxed) - statistics.median(plain)
    print(f"  difference of medians                 : {difference:+.2f} ms")
    print(f"the isolated preexec, timed in the child: {shown(in_child, 'µs')}")
    print(f"harden_process() in the bot             : {shown([c for _, c in hardening], 'ms')}")
    print(f"  importing it first (ctypes, which numpy and aiortc import later anyway): "
          f"{shown([i for i, _ in hardening], 'ms')}")
    print(f"the bot's allow-listed environment      : {environment_us(2000):.1f} µs")
    isolation.close()


if __name__ == "__main__":
    main()
