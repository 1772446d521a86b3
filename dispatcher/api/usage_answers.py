"""`GET /usage` answers kept `FRESH_SECONDS` at this replica: the same query again (its days, its
grouping, its key) is answered from here, with no slot, no day of the key's budget and no store
call. A dashboard or a script polling a key's usage reads sums at most that old."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

FRESH_SECONDS = 5.0
MAX_KEPT = 256  # answers, the oldest forgotten first


class RecentAnswers:
    def __init__(self, fresh_seconds: float = FRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._fresh = fresh_seconds
        self._clock = clock
        self._kept: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def get(self, query: Hashable) -> Any | None:
        """The answer kept for `query` while it is fresh, else None."""
        kept = self._kept.get(query)
        if kept is None or self._clock() - kept[0] > self._fresh:
            return None
        return kept[1]

    def keep(self, query: Hashable, answer: Any) -> None:
        self._kept.pop(query, None)
        self._kept[query] = (self._clock(), answer)
        while len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)
