"""A pool's size from the planner's targets: up at once; down only to the highest target of the last
`seconds` (a scale-down stabilisation window, as a HorizontalPodAutoscaler keeps one), and at once only
by more than a slack, so that a target that wanders by a bot or two leaves the size alone; a smaller
fall is made once every target of a further window was below the size. Never above `cap`. A warm
machine deleted in a lull is a cold start spent again when the demand comes back. Pure: the
dispatcher (reserve/pool_sizing.py) and the reserve simulator size with the same code.
"""

from __future__ import annotations

import math
from collections import deque

SLACK = 0.2  # a fall smaller than this share of the size (and than one bot) is not made


class ScaleDownWindow:
    def __init__(self, seconds: float, cap: int) -> None:
        self.seconds = seconds
        self.cap = cap  # RESERVE_MAX_IDLE: no size above it, whatever was found
        self.kept: int | None = None  # the size this window last gave
        self._targets: deque[tuple[float, int]] = deque()  # (when, target), oldest first
        self._below_since: float | None = None  # since when the window's peak stays below `kept`

    def size(self, now: float, target: int) -> int:
        """The size to keep now, given this tick's target."""
        self._targets.append((now, target))
        while self._targets and self._targets[0][0] < now - self.seconds:
            self._targets.popleft()
        peak = max(t for _, t in self._targets)
        if self.kept is None or peak >= self.kept:
            self.kept, self._below_since = peak, None
        elif peak <= self.kept - max(1, math.ceil(SLACK * self.kept)):
            self.kept, self._below_since = peak, None
        elif self._below_since is None:
            self._below_since = now
        elif now - self._below_since >= self.seconds:
            self.kept, self._below_since = peak, None
        self.kept = min(self.kept, self.cap)
        return self.kept

    def seed(self, now: float, size: int) -> None:
        """The pool's size as found (another replica's, or a hand's): kept until the window has passed."""
        self._targets.clear()
        self._targets.append((now, min(size, self.cap)))
        self.kept, self._below_since = min(size, self.cap), None
