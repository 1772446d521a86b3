"""A pool's size from the planner's targets: up at once; down only to the highest target of the last
`seconds` (a scale-down stabilisation window, as a HorizontalPodAutoscaler keeps one), and only by more
than a slack, so that a target that wanders by a bot or two leaves the size alone. A warm machine
deleted in a lull is a cold start spent again when the demand comes back. Pure: the dispatcher
(reserve/pool_sizing.py) and the reserve simulator size with the same code.
"""

from __future__ import annotations

import math
from collections import deque

SLACK = 0.2  # a fall smaller than this share of the size (and than one bot) is not made


class ScaleDownWindow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.kept: int | None = None  # the size this window last gave
        self._targets: deque[tuple[float, int]] = deque()  # (when, target), oldest first

    def size(self, now: float, target: int) -> int:
        """The size to keep now, given this tick's target."""
        self._targets.append((now, target))
        while self._targets and self._targets[0][0] < now - self.seconds:
            self._targets.popleft()
        peak = max(t for _, t in self._targets)
        if self.kept is None or peak >= self.kept or peak <= self.kept - max(1, math.ceil(SLACK * self.kept)):
            self.kept = peak
        return self.kept

    def seed(self, now: float, size: int) -> None:
        """The pool's size as found (another replica's, or a hand's): kept until the window has passed."""
        self._targets.clear()
        self._targets.append((now, size))
        self.kept = size
