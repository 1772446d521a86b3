"""CPU pinning and CPU accounting for benchmark processes (Linux: `taskset`, `/proc/<pid>/stat`)."""

from __future__ import annotations

import os
import shutil


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` run on one CPU (`taskset -c`), or as is when not asked or not possible."""
    if cpu is None or shutil.which("taskset") is None or cpu >= (os.cpu_count() or 1):
        return command
    return ["taskset", "-c", str(cpu), *command]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat)
