"""What bench/dispatcher_tier.py reads around its bursts: the store's counters and memory (a
sampler of `INFO stats` on a thread, since `instantaneous_ops_per_sec` is a moving figure), a
process's resident memory, and the time of the read views at one size of the store.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import httpx
import redis


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def store_commands(admin: redis.Redis) -> int:
    """Commands the server ran so far, those inside scripts included (not the sampler's INFO)."""
    stats = admin.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if not k.startswith("cmdstat_info"))


def store_usec(admin: redis.Redis) -> dict[str, int]:
    """Microseconds the server spent in each command so far (a script's own commands counted apart too)."""
    return {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in admin.info("commandstats").items()}


class OpsSampler:
    """`instantaneous_ops_per_sec` once a second while a burst runs: its median and its highest."""

    def __init__(self, admin: redis.Redis, every: float = 1.0) -> None:
        self._admin, self._every = admin, every
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ops-sampler", daemon=True)

    def __enter__(self) -> OpsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._samples.append(int(self._admin.info("stats")["instantaneous_ops_per_sec"]))

    @property
    def median(self) -> float:
        return statistics.median(self._samples) if self._samples else 0.0

    @property
    def highest(self) -> int:
        return max(self._samples, default=0)


@dataclass(frozen=True)
class ViewTime:
    label: str
    shown: int  # sessions in the last good answer (1 for a one-session view)
    p50_ms: float  # of every round, failed ones included
    p95_ms: float
    errors: int = 0  # rounds answered with an error, or not within the client's timeout
    error: str = ""  # the last one's status and code, or the exception's name


def time_view(client: httpx.Client, url: str, key: str, rounds: int, label: str) -> ViewTime:
    """The view's time over `rounds` reads; a read that fails is timed and counted, never raised:
    a view that breaks at some size is a figure of that size."""
    took: list[float] = []
    shown = errors = 0
    error = ""
    for _ in range(rounds):
        began = time.perf_counter()
        try:
            answer = client.get(url, headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            took.append((time.perf_counter() - began) * 1000)
            errors, error = errors + 1, type(exc).__name__
            continue
        took.append((time.perf_counter() - began) * 1000)
        if answer.is_error:
            errors, error = errors + 1, f"{answer.status_code} {answer.text[:120]}"
            continue
        body = answer.json()
        shown = len(body["sessions"]) if isinstance(body, dict) and "sessions" in body else 1
    took.sort()
    return ViewTime(label, shown, statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.95))],
                    errors, error)
