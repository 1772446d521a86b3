"""Per source address: at most `rate` INVITEs in any `period` seconds, else the source cools down
for `cool_down` seconds, every INVITE of its refused meanwhile; and at most `calls` calls of its at
once. A scanner trying numbers takes its own refusals and nothing else of the edge's; a trunk's
rate is well under it (docs/sip.md#capacity)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

TRACKED_SOURCES = 4096  # the oldest-seen source is forgotten beyond this: memory stays bounded


@dataclass
class _Source:
    window_start: float
    invites: int = 0
    cool_until: float = 0.0
    calls: int = 0


class SourceLimits:
    def __init__(self, rate: int, period: float, cool_down: float, calls: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.period, self.cool_down, self.calls = rate, period, cool_down, calls
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def check(self, host: str) -> str | None:
        """Counts an INVITE from `host`; why it is refused, or None."""
        now = self._clock()
        source = self._sources.pop(host, None) or _Source(now)
        self._sources[host] = source  # the most recently seen last
        while len(self._sources) > TRACKED_SOURCES:
            self._sources.popitem(last=False)
        if now < source.cool_until:
            return "source cooling down after too many INVITEs"
        if now - source.window_start >= self.period:
            source.window_start, source.invites = now, 0
        source.invites += 1
        if source.invites > self.rate:
            source.cool_until = now + self.cool_down
            return f"source over {self.rate} INVITEs in {self.period:g} s"
        if source.calls >= self.calls:
            return f"source already has {self.calls} calls"
        return None

    def holds_most(self, host: str) -> bool:
        """Whether `host` has its most calls at once now."""
        source = self._sources.get(host)
        return source is not None and source.calls >= self.calls

    def started(self, host: str) -> None:
        if (source := self._sources.get(host)) is not None:
            source.calls += 1

    def ended(self, host: str) -> None:
        if (source := self._sources.get(host)) is not None:
            source.calls = max(0, source.calls - 1)
