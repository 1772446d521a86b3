"""Requests counted over the last second, as a carrier's per-second limit counts them (each request counts,
refused or not), shared by the carrier fakes that answer 429 past it."""

from __future__ import annotations

import time


class SecondWindow:
    def __init__(self) -> None:
        self._seen: list[float] = []

    def over(self, per_second: float) -> bool:
        """Counts this request; whether the last second's requests, it among them, are more than `per_second`."""
        now = time.monotonic()
        self._seen = [t for t in self._seen if now - t < 1.0]
        self._seen.append(now)
        return len(self._seen) > per_second
