"""A region's launches spread over several cells (Fly apps, AWS accounts, GCP projects): the one implementation.

A cell has a name, its own launch bucket (dispatcher/machines/creates.py: `<provider>:<cell>`,
counted once for the deployment in the store), its running count, an optional room (the most
machines it may run; 0: closed, to be drained) and a drain. A cold session's home cell is the one its id hashes to (the
same at every replica and retry, so a retry meets its machine again). When a cell's provider
answers throttling or quota errors the provider drains it: set aside for a bounded, exponential,
jittered backoff (this replica's view), its starts going to the next open cell in the session's
stable order. A start goes to the first open cell that gives a launch token within the rate's
`max_wait`. Every cell drained: `<provider>_cells_drained`, a 503 whose Retry-After is the soonest
end of a backoff and whose message names each cell and its backoff. A warm reserve over the cells
(dispatcher/machines/cell_refills.py) takes its refills' tokens from the same buckets, only in open
cells with room, and its idle machines count in their cell's running count and room. A provider
whose machines must stay in their home cell (Fly: a bot's identity token names its app) passes
`spread=False`, and drains nothing: its starts could go nowhere else.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from dispatcher.machines.base import Machine, MachinesError
from dispatcher.machines.creates import Creates
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.coordination import CreateLimits

DRAIN_BASE_SECONDS = 2.0  # the first backoff of a cell that throttles
DRAIN_CAP_SECONDS = 120.0  # never set aside longer: a quota raised meanwhile is seen within two minutes
LAUNCH_WINDOW_SECONDS = 10.0  # launches a second are counted over this window
CELLS_NAMED = 8  # an answer names at most this many cells (the rest counted): its message stays short
T = TypeVar("T")


@dataclass(frozen=True)
class CellView:
    """What an operator sees of a cell (`GET /status`, `voicefleet status`)."""

    name: str
    launches_per_second: float
    running: int
    room: int | None
    drained_until: float | None  # epoch seconds; None: open
    reason: str | None
    unreadable: str | None = None  # why its last listing failed (its tasks then go uncounted); None: read


@dataclass
class _Drain:
    failures: int = 0
    until: float = 0.0  # monotonic
    reason: str | None = None


class Cells:
    def __init__(self, provider: str, coordination: CreateLimits, rate: Rate, names: tuple[str, ...], *,
                 groups: bool = True, spread: bool = True, room: Mapping[str, int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 jitter: Callable[[float, float], float] = random.uniform,
                 drain_base: float = DRAIN_BASE_SECONDS, shared: Mapping[str, str] | None = None,
                 rates: Mapping[str, Rate] | None = None) -> None:
        """`groups` False (one cell): its bucket keeps the provider's own name, `<provider>`;
        `drain_base`: a cell's first backoff (doubling from there up to `DRAIN_CAP_SECONDS`);
        `shared`: a cell -> the cell whose bucket it takes from (two cells the cloud rates as one);
        `rates`: a cell -> its own bucket's rate and burst (else `rate`'s; `rate.max_wait` is every cell's)."""
        if not names or (len(names) > 1 and not groups):
            raise ValueError("cells need at least one name, and a bucket each when there are several")
        self.provider, self.rate, self.spread = provider, rate, spread
        self.creates = Creates(provider, coordination, rate, groups=names if groups else (), shared=shared,
                               rates=rates)
        self.names = names
        self._room = dict(room or {})
        self._clock, self._wall, self._jitter, self._drain_base = clock, wall, jitter, drain_base
        self._drains = {name: _Drain() for name in names}
        self._running = dict.fromkeys(names, 0)
        self._idle = dict.fromkeys(names, 0)  # reserve machines, launched or under way, not yet claimed
        self._launches: dict[str, deque[float]] = {name: deque() for name in names}
        self._unreadable: dict[str, str | None] = dict.fromkeys(names)

    def home(self, session_id: str) -> str:
        """The cell a session's cold machine belongs in: the same at every replica, every retry."""
        return self.creates.app_of(session_id) if len(self.names) > 1 else self.names[0]

    def order(self, session_id: str, prefer: str | None = None) -> tuple[str, ...]:
        """The cells a session's launch tries, home first (or `prefer`: where its machine already
        is), then on round the list (stable too)."""
        if not self.spread:
            return (self.home(session_id),)
        start = self.names.index(self.home(session_id))
        rotation = self.names[start:] + self.names[:start]
        return tuple(dict.fromkeys((prefer, *rotation))) if prefer in self.names else rotation

    def drained(self, name: str) -> bool:
        return self._drains[name].until > self._clock()

    def closed(self, name: str) -> bool:
        """The cell's room is 0: no new machine goes there (its running ones end as they would)."""
        return self._room.get(name) == 0

    def has_room(self, name: str) -> bool:
        room = self._room.get(name)
        return room is None or self.running(name) < room

    def running(self, name: str) -> int:
        """The cell's machines: its sessions' and its reserve's."""
        return self._running[name] + self._idle[name]

    def refillable(self) -> tuple[str, ...]:
        """The cells a reserve launch may go to: open, with room beside a slot kept for a cold start (a
        session no idle bot can serve, warming or of another release, is never refused for the reserve's
        sake), and read at their last listing (the reserve could not count or find its machines in one
        that was not)."""
        return tuple(name for name in self.names
                     if not self.drained(name) and self._room_beside_a_cold_start(name) and self.readable(name))

    def _room_beside_a_cold_start(self, name: str) -> bool:
        room = self._room.get(name)
        return room is None or self.running(name) + 1 < room

    def readable(self, name: str) -> bool:
        """Whether the cell answered its last listing."""
        return self._unreadable[name] is None

    async def cold_turn(self, session_id: str, *, tried: Iterable[str] = (), prefer: str | None = None) -> str:
        """The cell a cold launch goes to, its token taken (waited for when due within `max_wait`).
        `tried`: cells this launch already found throttling; `prefer`: the cell its machine is known
        to be in, tried first. Refused: every cell drained (or tried)
        → `<provider>_cells_drained`; none with room → `<provider>_capacity`; no token soon enough
        → `<provider>_rate_limited`."""
        candidates = [name for name in self.order(session_id, prefer) if name not in set(tried)]
        open_cells = [name for name in candidates if not self.drained(name)]
        if not open_cells:
            raise self._all_drained(candidates or list(self.order(session_id)))
        roomy = [name for name in open_cells if self.has_room(name)]
        if not roomy:
            raise MachinesError(f"{self.provider}_capacity", f"{self.provider}: every open cell is full "
                                f"({', '.join(self._fullness(n) for n in open_cells)})", retry_after=10.0)
        soonest = None
        for name in roomy:
            turn = await self.creates.cold_in(name, self.rate.max_wait)
            if turn.granted:
                if turn.wait > 0:
                    await asyncio.sleep(turn.wait)
                return name
            soonest = turn.wait if soonest is None else min(soonest, turn.wait)
        wait = soonest or 0.0
        raise MachinesError(f"{self.provider}_rate_limited",
                            f"{self.provider}: the create limit is spent for {wait:.1f}s in every open cell "
                            f"(more than {self.rate.max_wait:g}s)", retry_after=max(wait, 0.1))

    def _fullness(self, name: str) -> str:
        return f"{name} closed" if self.closed(name) else f"{name} {self.running(name)}/{self._room[name]}"

    def _all_drained(self, names: list[str]) -> MachinesError:
        now = self._clock()
        waits = {name: max(self._drains[name].until - now, 0.0) for name in self.names if name in names}
        said = "; ".join(f"{name} for {waits[name]:.0f}s ({self._drains[name].reason or 'throttled'})"
                         for name in list(waits)[:CELLS_NAMED])
        more = f"; and {len(waits) - CELLS_NAMED} more" if len(waits) > CELLS_NAMED else ""
        message = f"every {self.provider} cell is drained: {said}{more}"
        error = MachinesError(f"{self.provider}_cells_drained", message, retry_after=max(min(waits.values()), 1.0))
        error.public_message = message  # the operator's own cell names and reasons, no provider words
        return error

    def drain(self, name: str, reason: str, retry_after: float | None = None) -> float:
        """Sets the cell aside after a throttling or quota answer; returns the backoff in seconds:
        exponential in the cell's failures in a row, jittered in its upper half (so replicas do not
        come back together), never less than the provider's own Retry-After, never past the cap."""
        drain = self._drains[name]
        drain.failures += 1
        ceiling = min(DRAIN_CAP_SECONDS, self._drain_base * 2 ** (drain.failures - 1))
        seconds = min(DRAIN_CAP_SECONDS, max(self._jitter(ceiling / 2, ceiling), retry_after or 0.0))
        drain.until, drain.reason = self._clock() + seconds, reason[:200]
        return seconds

    def launched(self, name: str) -> None:
        """A machine was created in the cell: counted in its launches a second and its running count."""
        self._drains[name].failures = 0  # it answers again: the next drain starts from the base
        self._running[name] += 1
        launches = self._launches[name]
        launches.append(self._clock())
        self._trim(launches)

    def counted(self, name: str, running: int) -> None:
        """The cell's running machines as its provider listed them."""
        self._running[name] = running
        self._unreadable[name] = None

    def unreadable(self, name: str, reason: str) -> None:
        """The cell's listing failed (its running count is the last one read): shown until it answers."""
        self._unreadable[name] = reason[:200]

    def ended(self, name: str) -> None:
        self._running[name] = max(self._running[name] - 1, 0)

    def idle_launching(self, name: str) -> None:
        """A reserve machine is being launched in the cell (its token taken): counted from now."""
        self._idle[name] += 1

    def idle_gone(self, name: str) -> None:
        """A reserve machine of the cell failed to launch, or was retired."""
        self._idle[name] = max(self._idle[name] - 1, 0)

    def idle_claimed(self, name: str) -> None:
        """A session claimed a reserve machine of the cell: a session's machine now."""
        self.idle_gone(name)
        self._running[name] += 1

    def idle_counted(self, name: str, idle: int) -> None:
        """The cell's reserve machines as its provider listed them (it answered)."""
        self._idle[name] = idle
        self._unreadable[name] = None

    def _trim(self, launches: deque[float]) -> None:
        while launches and launches[0] < self._clock() - LAUNCH_WINDOW_SECONDS:
            launches.popleft()

    def views(self) -> list[CellView]:
        now, wall = self._clock(), self._wall()
        views = []
        for name in self.names:
            self._trim(self._launches[name])
            drain = self._drains[name]
            drained = drain.until > now
            views.append(CellView(
                name=name, launches_per_second=round(len(self._launches[name]) / LAUNCH_WINDOW_SECONDS, 2),
                running=self.running(name), room=self._room.get(name),
                drained_until=wall + (drain.until - now) if drained else None,
                reason=drain.reason if drained else None, unreadable=self._unreadable[name]))
        return views


def cells_status(machines: object) -> list[dict[str, Any]] | None:
    """Each cell of a provider that launches over cells (Fly's apps, ECS_CELLS, CLOUDRUN_CELLS,
    GCE_CELLS), for `GET /status`; None for a provider without them."""
    cells = getattr(machines, "cells", None)
    return [asdict(view) for view in cells.views()] if isinstance(cells, Cells) else None


class PartialListing(list[Machine]):
    """A listing that left out the cells that did not answer (`missing`): what runs there is not in
    it, so nothing may be judged gone for want of it (the reaper's orphan rooms)."""

    def __init__(self, machines: list[Machine], missing: tuple[str, ...]) -> None:
        super().__init__(machines)
        self.missing = missing


class RoomListing(list[T]):
    """A cell's listing that counts what holds the cell's room (`holding`) where that is not simply what it
    lists as running: a pod being deleted holds its namespace's quota until it is gone (k8s/pods.py)."""

    def __init__(self, items: list[T], holding: int) -> None:
        super().__init__(items)
        self.holding = holding


def holding(listing: list[Any], otherwise: int) -> int:
    """What of a cell's listing holds its room: the listing's own count, else `otherwise`."""
    return listing.holding if isinstance(listing, RoomListing) else otherwise


class CellTurnedAway(MachinesError):
    """A cell's provider answered a launch with throttling or a quota (nothing was made): the
    caller drains the cell and tries the next (`Cells.drain`, `cold_turn(tried=…)`)."""
