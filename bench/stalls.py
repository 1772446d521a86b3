"""A busy machine's stalls without its load: each process under the given pids (themselves and their
descendants) is stopped (SIGSTOP) for 0.05-0.5 s (or up to `--longest`) at random moments, about a
third of the time, as a process among 20-40 runnable ones on two cores is left waiting for a core;
resumed (SIGCONT) on SIGTERM. Used by bench/answer_split.py; costs the machine next to no CPU.

    python -m bench.stalls [--longest SECONDS] PID [PID ...]
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

STALL = (0.05, 0.5)  # seconds a process is stopped
RUN = (0.1, 1.0)  # seconds it runs between stalls


def tree(roots: list[int]) -> set[int]:
    """The roots and every process descended from them, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, grew = set(roots), True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found - {os.getpid()}


def send(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def main() -> None:
    arguments = sys.argv[1:]
    longest = STALL[1]
    if arguments[:1] == ["--longest"]:
        longest, arguments = float(arguments[1]), arguments[2:]
    roots = [int(pid) for pid in arguments]
    stopped: set[int] = set()

    def resume(*_: object) -> None:
        send(stopped, signal.SIGCONT)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, resume)
    due = {pid: time.monotonic() + random.uniform(*RUN) for pid in tree(roots)}
    until: dict[int, float] = {}
    pids, read_at = set(due), time.monotonic()
    while True:
        now = time.monotonic()
        if now - read_at > 1.0:  # new bots are found within a second; /proc is not read 50 times a second
            pids, read_at = tree(roots), now
        for pid in pids:
            due.setdefault(pid, now + random.uniform(*RUN))
            if pid in until and now >= until[pid]:
                send({pid}, signal.SIGCONT)
                stopped.discard(pid)
                del until[pid]
                due[pid] = now + random.uniform(*RUN)
            elif pid not in until and now >= due[pid]:
                stopped.add(pid)
                send({pid}, signal.SIGSTOP)
                until[pid] = now + random.uniform(STALL[0], longest)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
