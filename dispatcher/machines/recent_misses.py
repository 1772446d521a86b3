"""Ids a provider look found nothing for, each remembered a short while: a caller asking again about the
same id meanwhile is answered here, not with another round of provider reads.

For look-ups anyone holding a credential can make again and again (a bot's hello), where a miss costs
reads in every project or account: an id that does not run now rarely runs a few seconds later, and one
that does is asked about again once its entry lapses. Bounded in time (`seconds`) and in size (the
newest `limit` misses), so no caller grows it without end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dispatcher.recent import Recent

MISS_SECONDS = 30.0  # a reserve bot re-dials within seconds: it waits this long at most to be looked for again
MISSES_KEPT = 10_000


class RecentMisses:
    def __init__(self, seconds: float = MISS_SECONDS, limit: int = MISSES_KEPT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self._clock = seconds, clock
        self._until: Recent[str, float] = Recent(limit)

    def add(self, key: str) -> None:
        self._until[key] = self._clock() + self.seconds

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or (until := self._until.get(key)) is None:
            return False
        if until <= self._clock():
            del self._until[key]
            return False
        return True
