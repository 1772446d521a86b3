"""What binding a local bot's hello to its launched process costs, in one run.

    uv run --all-groups python -m bench.launch_proof --runs 200

Each local bot is launched holding one end of a socket pair of its own (pass_fds), and each hello
carries a nonce written through it (dispatcher/machines/local/launch_proof.py, bot/identity.py).
Measured, medians [min–max] over alternating runs:

- fork → exec → exit of `python -S -c pass` without and with a launch socket (made, passed with
  `pass_fds`, the dispatcher's copy of the child's end closed after the spawn): the difference is
  what every local bot's start pays;
- one proof: the bot's write of a fresh nonce and the dispatcher's drain and check of it.

Prints the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from bot.identity import LaunchSocket as BotEnd
from botchannel.contract import IDENTITY_FD_VARIABLE
from dispatcher.machines.local.launch_proof import LaunchedProcesses

COMMAND = (sys.executable, "-S", "-c", "pass")


def spawn_plain() -> None:
    subprocess.run(COMMAND, check=True)


def spawn_with_socket(launched: LaunchedProcesses) -> Callable[[], None]:
    def spawn() -> None:
        pair = launched.launching("session", "s-bench")
        try:
            subprocess.run(COMMAND, check=True, pass_fds=(pair.child.fileno(),))
        finally:
            pair.handed_over()
            launched.forget("session", "s-bench")

    return spawn


def one_proof(launched: LaunchedProcesses) -> Callable[[], None]:
    pair = launched.launching("session", "s-proof")
    bot = BotEnd({IDENTITY_FD_VARIABLE: str(pair.child.fileno())})
    pair.launched(os.getpid())  # this process writes as the launched bot (the kernel attests its pid)

    def prove() -> None:
        assert pair.spend(bot.proof())

    return prove


def timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def summary(name: str, values: list[float]) -> str:
    return f"{name:<44} {statistics.median(values):8.3f} ms [{min(values):.3f}–{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    launched = LaunchedProcesses()
    with_socket, prove = spawn_with_socket(launched), one_proof(launched)
    plain: list[float] = []
    socketed: list[float] = []
    for _ in range(runs):  # alternating: load on a shared machine falls on both alike
        plain.append(timed(spawn_plain))
        socketed.append(timed(with_socket))
    proofs = [timed(prove) for _ in range(runs * 10)]
    print(f"runs {runs}, load average {os.getloadavg()[0]:.2f}")
    print(summary("spawn, no launch socket", plain))
    print(summary("spawn, with a launch socket", socketed))
    print(f"{'difference of medians':<44} {statistics.median(socketed) - statistics.median(plain):8.3f} ms")
    print(summary("one proof (write, drain, check)", proofs))
    launched.close()


if __name__ == "__main__":
    main()
