"""A provider's cold start as published or measured: launch call → the bot ready, a lognormal.

Each provider's package names its own (`COLD_START` in dispatcher/machines/<provider>/__init__.py):
the dispatcher seeds the wait it tells a cold start with it until it has measured its own starts
(dispatcher/reserve/start_times.py), and the reserve's simulator draws its cold starts from it
(bench/reserve_sim_providers.py). Kept free of imports: the Pulumi program reads the reserve's
settings through dispatcher/reserve/policy.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ColdStart:
    median_seconds: float
    sigma: float  # spread of log(seconds)

    @property
    def mean_seconds(self) -> float:
        """The lognormal's mean, median·exp(σ²/2): what a steady count of booting machines wants
        (Little's law), above the median by the long tail."""
        return self.median_seconds * math.exp(self.sigma**2 / 2)
