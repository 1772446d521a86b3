"""The deployment's measured cold starts, as this replica quotes from them.

Each cold start measured here (a reserve bot's launch → hello, a cold session's `POST /start` →
its bot's `ready`) is added to this replica's copy at once and to the store's list
(`ReservePool.started_cold`); every RELOAD_SECONDS the copy is read back from the store, so the
starts measured at the other replicas count here too, and a replica that starts (a restart, a
deploy, a new replica) quotes the deployment's starts from its first tick rather than the seed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from dispatcher.reserve.start_times import OBSERVATION_CAP, WINDOW, StartTimes, is_measurement
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import ReservePool

log = logging.getLogger("dispatcher.reserve.reserve")

RELOAD_SECONDS = 5.0


class MeasuredStarts:
    def __init__(self, pool: ReservePool, seed_seconds: float, seed_sigma: float,
                 spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        self._pool = pool
        self._seed = (seed_seconds, seed_sigma)
        self._spawn = spawn  # the store's write runs beside the report that measured it
        self._starts: deque[float] = deque(maxlen=WINDOW)
        self._writing: list[float] = []  # measured here, not yet in the store: a reload keeps them
        self._loaded = float("-inf")
        self.times = StartTimes.fitted(*self._seed, ())

    def observe(self, seconds: float) -> None:
        if not is_measurement(seconds):
            return  # a clock glitch, or past what a start is timed for, is not a measurement
        seconds = min(seconds, OBSERVATION_CAP * self.times.quote())  # a late `ready` moves it by steps
        self._starts.append(seconds)
        self._fit()
        self._writing.append(seconds)
        self._spawn(self._write(seconds))

    async def _write(self, seconds: float) -> None:
        try:
            await self._pool.started_cold(seconds)
        finally:
            self._writing.remove(seconds)

    async def reload(self, now: float) -> None:
        """The deployment's starts from the store, at most every RELOAD_SECONDS (`now`: monotonic)."""
        if now - self._loaded < RELOAD_SECONDS:
            return
        self._loaded = now
        try:
            starts = await self._pool.cold_starts()
        except StoreUnavailable:
            return  # this replica's own copy stays
        starts = [s for s in starts if is_measurement(s)]  # any store writer can push to the list
        if starts or self._writing:
            self._starts = deque([*starts, *self._writing], maxlen=WINDOW)
            self._fit()

    def _fit(self) -> None:
        try:
            self.times = StartTimes.fitted(*self._seed, self._starts)
        except (ArithmeticError, ValueError) as exc:  # the quote keeps its last fit; the reserve goes on
            log.warning("reserve: the measured cold starts could not be fitted (%s); the previous fit stays", exc)
