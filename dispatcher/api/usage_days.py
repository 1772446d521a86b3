"""How many days of `GET /usage` a client key reads, across every replica: `DAYS_PER_MINUTE`, after
a first `BURST_DAYS`, each query charged by the days it spans (a day is one store script call,
whoever asks).

The query slots (dispatcher/api/usage_queries.py) bound how many run at once, not how often: two keys
asking for 400 days again as soon as answered held both slots and the store all the time. Charged
by its days, a key's longest query runs once a minute (two back to back: a table by key, then by
model) while its one-day reads pass hundreds of times. The bucket is the store's, so a second
replica gives a key no second minute (dispatcher/store/weighted_rates.py); admin keys are not charged."""

from __future__ import annotations

import math

from dispatcher.errors import ApiError
from dispatcher.store.coordination import WeightedRate
from dispatcher.store.weighted_rates import LocalWeightedRate

DAYS_PER_MINUTE = 400  # the longest query's span (dispatcher/usage/rollups.py MAX_QUERY_DAYS), once a minute
BURST_DAYS = 800
USAGE_DAYS = "usage-days"  # the store's key of each key's bucket: `usage-days:<key id>`


class UsageDays:
    def __init__(self, rate: WeightedRate | None = None) -> None:
        """`rate`: the deployment's (`coordination.weighted_rate`, dispatcher/wiring.py); else this process's."""
        self._rate = rate or LocalWeightedRate(DAYS_PER_MINUTE / 60, BURST_DAYS)

    async def charge(self, who: str, days: int) -> None:
        """Take `days` from `who`'s minute, or 429 naming when it may ask (nothing is taken then)."""
        wait = await self._rate.take(who, days)
        if wait > 0:
            raise ApiError(429, "usage_days_exhausted", f"this key has read the days of GET /usage it may for now "
                           f"({DAYS_PER_MINUTE} a minute): ask again in {math.ceil(wait)} s, or for fewer days",
                           retry_after=wait)
