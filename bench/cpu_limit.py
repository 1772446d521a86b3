"""A process held to a share of a core and a memory ceiling, as a container's limits hold it.

`limited(pid, cpus=0.5, memory_mib=1024)` moves the process (all its threads) into a control group of
its own with a CFS quota of `cpus` cores and a memory limit, and removes the group afterwards. The
kernel enforces both exactly as it does for a Fargate task or a pod's limits (both are cgroup quotas),
so a bot that keeps real time here keeps it there, the cloud's noisy neighbours aside. Needs root and
cgroup v1's `cpu` and `memory` hierarchies or cgroup v2 (a clear error otherwise).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class LimitUnavailable(RuntimeError):
    pass


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


@contextlib.contextmanager
def limited(pid: int, *, cpus: float, memory_mib: int, name: str = "voicefleet-bench") -> Iterator[None]:
    group = f"{name}-{os.getpid()}"
    if _v2():
        dirs = [ROOT / group]
        writes = [(dirs[0] / "cpu.max", f"{round(cpus * PERIOD_US)} {PERIOD_US}"),
                  (dirs[0] / "memory.max", str(memory_mib * 1024 * 1024))]
    else:
        dirs = [ROOT / "cpu" / group, ROOT / "memory" / group]
        writes = [(dirs[0] / "cpu.cfs_period_us", str(PERIOD_US)),
                  (dirs[0] / "cpu.cfs_quota_us", str(round(cpus * PERIOD_US))),
                  (dirs[1] / "memory.limit_in_bytes", str(memory_mib * 1024 * 1024))]
    try:
        for folder in dirs:
            folder.mkdir(exist_ok=True)
        for path, value in writes:
            path.write_text(value)
        for folder in dirs:
            (folder / "cgroup.procs").write_text(str(pid))  # every thread of the process moves with it
    except OSError as error:
        _remove(dirs)
        raise LimitUnavailable(f"cannot hold the bot to {cpus:g} CPU / {memory_mib} MiB ({error}): run as root on "
                               "a machine with cgroup v1 cpu+memory or cgroup v2") from error
    try:
        yield
    finally:
        _remove(dirs)


def throttled_seconds(pid: int) -> float:
    """Seconds the process's group was held back by its CPU quota so far (0 when unknown)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        folder = ROOT / path.lstrip("/") if controllers == "" else ROOT / "cpu" / path.lstrip("/")
        if controllers in ("", "cpu") or "cpu" in controllers.split(","):
            with contextlib.suppress(OSError):
                stats = dict(row.split() for row in (folder / "cpu.stat").read_text().splitlines())
                if "throttled_usec" in stats:
                    return int(stats["throttled_usec"]) / 1e6
                return int(stats.get("throttled_time", 0)) / 1e9
    return 0.0


def _remove(dirs: list[Path]) -> None:
    for folder in dirs:
        if not folder.exists():
            continue
        with contextlib.suppress(OSError):  # a process still inside goes back to the root group first
            for pid in (folder / "cgroup.procs").read_text().split():
                (folder.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            folder.rmdir()
