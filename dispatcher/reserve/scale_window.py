"""A pool's size from the planner's targets: up at once, down only to the highest target of the last
`seconds` (a scale-down stabilisation window, as a HorizontalPodAutoscaler keeps one). A warm machine
deleted in a lull is a cold start spent again when the demand comes back. Pure: the simulator
(bench/reserve_sim_pool.py) sizes with the same code the dispatcher runs (reserve/pool_sizing.py)."""

from __future__ import annotations

from collections import deque


class ScaleDownWindow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._targets: deque[tuple[float, int]] = deque()  # (when, target), oldest first

    def size(self, now: float, target: int) -> int:
        """The size to keep now, given this tick's target."""
        self._targets.append((now, target))
        while self._targets and self._targets[0][0] < now - self.seconds:
            self._targets.popleft()
        return max(t for _, t in self._targets)

    def forget(self) -> None:
        """Another replica sized the pool meanwhile: this one's past targets say nothing of it."""
        self._targets.clear()
