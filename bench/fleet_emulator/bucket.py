"""Fly's documented create limit, as its API enforces it: 1 request/s per action per app, burst 3
(shared/reference/machines_apis.md). Past it the API answers 429; it does not queue."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    per_second: float
    burst: int
    _tokens: float = field(init=False)
    _at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)

    def take(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
