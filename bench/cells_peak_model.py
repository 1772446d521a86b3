"""A region's day of starts through the dispatcher's real cell choice (dispatcher/machines/cells.py
`Cells`) against each cell's provider quotas (bench/cells_peak_quotas.py), on a virtual clock.

Every start asks the real `Cells.cold_turn` for its cell (home by the session's hash, the cell's launch
token from the deployment's count: the one-process `LocalCreateLimit` on the virtual clock), then the
cell's provider answers the create as its quotas do. A refusal drains the cell (`Cells.drain`) and the
start goes on to the next open cell, as dispatcher/machines/cell_launches.py does; with no open cell
left (or on Fly, whose starts never leave their app) it is refused. The product retries a throttled
create in the last open cell with backoff: counted here as refused, which flatters nothing.
A provider that counts deletes with creates (ACI) has each call's end take a token of its cell's launch
limit, as the product's delete does. Every start is cold: with cells the warm reserve does not run
(docs/operations.md, "Cells"), so a start is ready after its token's wait and the provider's cold start
(bench/reserve_sim_providers.py). Calls last `CALL_SECONDS` (the plan's `expectedCallMinutes`); the
day's shape is the reserve simulator's seasonal one without its bursts (bench/reserve_sim_traffic.py),
scaled so that its peak holds `peak` calls at once.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from bench.cells_peak_plan import CALL_MINUTES, PlannedCell
from bench.reserve_sim_traffic import DAY, DAY_START_EPOCH, SHAPES
from dispatcher.machines.base import MachinesError
from dispatcher.machines.cells import Cells
from dispatcher.store.coordination import CreateLimit, CreateTurn
from dispatcher.store.memory import LocalCreateLimit

CALL_SECONDS = CALL_MINUTES * 60.0
SHAPE = SHAPES["seasonal"]
PEAK_SECONDS = SHAPE.peak_hour * 3600.0  # the day's busiest moment (UTC): where a cell is lost
T = TypeVar("T")


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Noted:
    """A create limit that notes the wait of the last turn it gave (when the launch's token is due)."""

    def __init__(self, limit: LocalCreateLimit, limits: VirtualCreateLimits) -> None:
        self._limit, self._limits = limit, limits

    async def cold(self, max_wait: float) -> CreateTurn:
        turn = await self._limit.cold(max_wait)
        self._limits.last_wait = turn.wait
        return turn

    async def refill(self) -> CreateTurn:
        return await self._limit.refill()

    async def look(self) -> CreateTurn:
        return await self._limit.look()


class VirtualCreateLimits:
    """The store's `CreateLimits` as one process counts them (dispatcher/store/memory.py), on the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self.last_wait = 0.0

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        return _Noted(LocalCreateLimit(per_second, burst, self._clock), self)


def settle(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine of `Cells` to its end at this instant of virtual time: its `asyncio.sleep` for a
    token due later is answered at once (the wait is counted from the turn, `VirtualCreateLimits.last_wait`)."""
    try:
        while True:
            coro.send(None).set_result(None)  # the sleep's future
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def arrivals(peak: float, seed: int, seconds: float) -> np.ndarray:
    """Start times over the day: a Poisson process whose rate at its peak holds `peak` calls at once."""
    rng = np.random.default_rng([seed, 1])
    steps = int(seconds)
    share = np.array([SHAPE.share(DAY_START_EPOCH + s + 0.5) for s in range(steps)])
    counts = rng.poisson(peak / CALL_SECONDS * share / SHAPE.peak_share)
    starts = np.repeat(np.arange(steps, dtype=float), counts) + rng.random(int(counts.sum()))
    return np.sort(starts)


@dataclass
class Outcome:
    starts: np.ndarray  # every start's time
    created: np.ndarray  # when its machine was created (NaN: refused)
    ready: np.ndarray  # when its bot was ready (NaN: refused)
    ends: np.ndarray  # when its call ended (a lost cell's calls end when it is lost)
    refused: Counter[str] = field(default_factory=Counter)
    dropped: int = 0  # calls that were running in the lost cell
    cells: int = 0


class PeakSimulation:
    def __init__(self, plan: PlannedCell, cells: int, peak: float, *, seed: int = 7, seconds: float = DAY,
                 lose_at: float | None = None) -> None:
        self.plan, self.peak, self.seed, self.seconds, self.lose_at = plan, peak, seed, seconds, lose_at
        self.names = tuple(f"cell-{n:02d}" for n in range(cells))
        self.clock = VirtualClock()
        self.limits = VirtualCreateLimits(self.clock)
        jitter = random.Random(f"{seed}/jitter")
        self.cells = Cells(plan.provider.machines, self.limits, plan.rate, self.names, spread=plan.spread,
                           clock=self.clock, wall=lambda: DAY_START_EPOCH + self.clock.now, jitter=jitter.uniform)
        self.quotas = {name: plan.quotas() for name in self.names}

    async def run(self) -> Outcome:
        """Async only for the running loop `Cells`' sleeps need; nothing here waits on it."""
        starts = arrivals(self.peak, self.seed, self.seconds)
        n = len(starts)
        p = self.plan.provider
        cold = p.cold_median_seconds * np.exp(np.random.default_rng([self.seed, 2]).normal(0.0, p.cold_sigma, n)) \
            + p.network_wait_seconds
        out = Outcome(starts, np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), cells=len(self.names))
        running: list[tuple[float, int, str]] = []  # (end, start, cell)
        lost: str | None = None
        times = starts.tolist()
        for i, t in enumerate(times):
            self.clock.now = t
            while running and running[0][0] <= t:
                end, _, name = heapq.heappop(running)
                if name != lost:
                    self.quotas[name].ended(end)
                    self.cells.ended(name)
                    if self.plan.deletes_spend:  # as aci/provider.py `_delete`: the cell's own token, taken at once
                        settle(self.cells.creates.cold_in(name, DAY))
            if lost is None and self.lose_at is not None and t >= self.lose_at:
                lost = self._lose(running, out)
            self._start(i, f"{self.seed}-{i}", t, float(cold[i]), out, running)
            if i % 50_000 == 0:
                await _purge()
        return out

    def _start(self, i: int, session: str, t: float, cold: float, out: Outcome,
               running: list[tuple[float, int, str]]) -> None:
        tried: list[str] = []
        while True:  # as dispatcher/machines/cell_launches.py: each cell that turns the start away is not tried again
            try:
                name = settle(self.cells.cold_turn(session, tried=tried))
            except MachinesError as refused:
                out.refused[refused.reason] += 1
                return
            created = t + self.limits.last_wait
            refusal = self.quotas[name].create(created)
            if refusal is None:
                self.cells.launched(name)
                out.created[i], out.ready[i] = created, created + cold
                out.ends[i] = created + cold + CALL_SECONDS
                heapq.heappush(running, (out.ends[i], i, name))
                return
            if not self.plan.spread:  # Fly: its app or nowhere (the product's retries there are not modelled)
                out.refused[f"{self.cells.provider}_throttled"] += 1
                return
            elsewhere = [c for c in self.cells.order(session) if c not in (*tried, name) and not self.cells.drained(c)]
            self.cells.drain(name, refusal.reason, refusal.retry_after)
            if not elsewhere:
                out.refused[f"{self.cells.provider}_throttled (last open cell)"] += 1
                return
            tried.append(name)

    def _lose(self, running: list[tuple[float, int, str]], out: Outcome) -> str:
        """The first cell stops answering: its calls end now, and each create sent there is refused."""
        name = self.names[0]
        self.quotas[name].lost = True
        self.cells.counted(name, 0)
        for _, i, cell in running:
            if cell == name:
                out.ends[i] = min(out.ends[i], self.clock.now)
                out.dropped += 1
        return name


async def _purge() -> None:
    """Lets the running loop clear the timers of the sleeps `settle` answered (each one cancelled)."""
    await asyncio.sleep(0)
