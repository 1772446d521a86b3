"""What the load generator itself costs, so a figure it reports is known not to be its own
slowness: its CPU seconds (per session, and as a share of one core) and its event loop's lag, the
time a 50 ms timer fires late (a loop too busy to read audio on time shows here first)."""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from cli.loadtest.summary import percentile

TICK = 0.05


class OwnCost:
    def __init__(self) -> None:
        self.cpu_began = time.process_time()
        self.wall_began = time.monotonic()
        self.lags: list[float] = []

    async def watch_loop(self) -> None:
        """Runs until cancelled: each tick's lateness."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.monotonic() - asked - TICK))

    def figures(self, sessions: int) -> dict[str, Any]:
        cpu = time.process_time() - self.cpu_began
        wall = time.monotonic() - self.wall_began
        return {
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            "cpu_seconds_per_session": round(cpu / sessions, 3) if sessions else None,
            "cpu_share_of_one_core": round(cpu / wall, 4) if wall else None,
            "loop_lag_p99_seconds": round(percentile(self.lags, 99), 4) if self.lags else None,
            "loop_lag_max_seconds": round(max(self.lags), 4) if self.lags else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
