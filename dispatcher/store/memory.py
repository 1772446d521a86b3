"""What one process counts and remembers for itself: admission's tally, rates, credentials held,
tokens spent. The one-process implementation's parts (dispatcher/store/local.py), and what a
replica falls back on when the store does not answer (dispatcher/store/forgiving.py).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any

from dispatcher.store.coordination import AtCapacity, CreateTurn, ReplicaPool
from dispatcher.store.share_ask import ShareAsk, share_then_cap
from dispatcher.store.unavailable import StoreUnavailable

MAX_REMEMBERED = 100_000  # one-time tokens remembered at once (a token lives minutes)
MAX_ARRIVALS = 10_000  # starts kept for a planner that is not taking them
MAX_COLD_STARTS = 30  # measured cold starts kept: the honest wait's window (dispatcher/reserve/start_times.py)
LAUNCH_TIMES_KEPT_SECONDS = 600.0  # how far back a count asked for elsewhere is placed among launches here


class LocalLaunches:
    """The provider's last count, plus the launches this process made since that count was asked
    for, plus those under way: a burst cannot slip past the cap before the provider lists it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counted = 0  # the provider's count at the last recount
        self._launched = 0  # launches made here, ever
        self._launched_at_count = 0  # … when that recount was asked for
        self._in_flight = 0
        self._clock = clock
        self._times: deque[float] = deque()  # when each launch of the last LAUNCH_TIMES_KEPT_SECONDS landed

    def asked(self, ago: float = 0.0) -> int:
        """What to hand `count_is` for a count asked for `ago` seconds ago (another replica's, read
        from the store): the launches made here until then."""
        if ago <= 0:
            return self._launched
        since = self._clock() - ago
        return self._launched - sum(1 for t in self._times if t > since)

    def count_is(self, counted: int, asked: int) -> None:
        self.counted, self._launched_at_count = counted, asked

    async def recount(self, count: Callable[[], Awaitable[int]], fresh_seconds: float,
                      sessions: Callable[[], Awaitable[Collection[str]]] | None = None) -> float:
        asked, started = self.asked(), self._clock()  # one process: its own launches, no record to keep
        self.count_is(await count(), asked)
        return self._clock() - started

    def current(self) -> int:
        return self.counted + (self._launched - self._launched_at_count) + self._in_flight

    async def ended(self, session_id: str) -> None:
        pass  # one process keeps no record of its running sessions: it counts the provider's

    def slot(self, limit: int, share: ShareAsk | None = None,
             session_id: str = "") -> contextlib.AbstractAsyncContextManager[None]:
        return self._slot(limit) if share is None else share_then_cap(share, self._slot(limit))

    @contextlib.asynccontextmanager
    async def _slot(self, limit: int) -> AsyncIterator[None]:
        # No await from the check to the increment: the check-and-take is atomic in this process.
        if self.current() >= limit:
            raise AtCapacity
        async with self.launching():
            yield

    @contextlib.asynccontextmanager
    async def launching(self) -> AsyncIterator[None]:
        """One launch, admitted (here or across replicas), counted from now on."""
        self._in_flight += 1
        launched = False
        try:
            yield
            launched = True
        finally:
            self._in_flight -= 1
            if launched:
                self._launched += 1
                now = self._clock()
                self._times.append(now)
                while self._times[0] < now - LAUNCH_TIMES_KEPT_SECONDS:
                    self._times.popleft()


class LocalRate:
    """`burst` calls at once, then one per 1/`per_second` s, per caller (GCRA, as the store's script)."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate needs a positive rate and a burst of at least 1")
        self._interval = 1.0 / per_second
        self._burst = burst
        self._clock = clock
        self._arrivals: dict[str, float] = {}  # caller → its theoretical arrival time (callers are API keys: few)

    async def take(self, caller: str) -> float:
        now = self._clock()
        arrival = max(self._arrivals.get(caller, now), now)
        # How far ahead of now the caller already is, compared with what its burst allows. Measured
        # from `now` and not as (arrival + interval) − burst × interval > now: adding and taking a
        # long interval back rounds, and refused a fresh caller's first call at some clock values.
        ahead = arrival - now - (self._burst - 1) * self._interval
        if ahead > 0:
            return ahead
        self._arrivals[caller] = arrival + self._interval
        return 0.0


class LocalCreateLimit:
    """The provider's create limit counted in this process (GCRA, as the store's script in
    dispatcher/store/rates.py): `burst` creates at once, then one per 1/`per_second` s."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a create limit needs a positive rate and a burst of at least 1")
        self._interval = 1.0 / per_second
        self._burst = burst
        self._headroom = min(1, burst - 1)  # kept for a cold start (none when the burst is 1)
        self._clock = clock
        self._due = -math.inf  # the bucket's theoretical arrival time: all tokens back by then
        self._holders: dict[str, float] = {}  # holder → when its last turn is due (`shared`)
        self._queued: dict[str, dict[str, float]] = {}  # holder → its queued calls' tickets → their deadlines
        self._turns: dict[str, tuple[float, float]] = {}  # what → (its turn's due, kept until) (`turn_of`)
        self._given: dict[str, float] = {}  # a granted call's ticket → its turn's due (`give_back`)
        self._holes: list[float] = []  # turns given back still to come, earliest first

    @property
    def per_second(self) -> float:
        return 1.0 / self._interval

    @property
    def burst(self) -> int:
        return self._burst

    def retuned(self, per_second: float, burst: int) -> LocalCreateLimit:
        """The same bucket at another rate (a trunk's `cps` changed, or a setting): the turns taken so far
        still count."""
        limit = LocalCreateLimit(per_second, burst, self._clock)
        limit._due = self._due
        limit._holders = self._holders
        limit._queued = self._queued
        limit._turns = self._turns
        limit._given = self._given
        limit._holes = self._holes
        return limit

    async def cold(self, max_wait: float, ticket: str = "") -> CreateTurn:
        return self._cold(max_wait, ticket, self._clock())

    def _cold(self, max_wait: float, ticket: str, now: float) -> CreateTurn:
        hole = self._take_hole(now, max_wait)
        turn = self._turn("cold", max_wait, now) if hole is None else CreateTurn(True, hole - now, 0)
        if turn.granted:
            self._record_given(ticket, now + turn.wait, now)
        return turn

    async def refill(self) -> CreateTurn:
        return self._turn("refill", 0.0)

    async def look(self) -> CreateTurn:
        return self._turn("look", 0.0)

    async def shared(self, holder: str, max_wait: float, ticket: str = "") -> CreateTurn:
        now = self._clock()
        for gone in [h for h, due in self._holders.items() if due <= now]:
            del self._holders[gone]  # turns passed: only holders still waiting are kept
        for gone in [h for h, queue in self._queued.items() if max(queue.values()) <= now]:
            del self._queued[gone]  # every call it queued is past its longest wait
        queue = {t: until for t, until in self._queued.pop(holder, {}).items() if until > now}
        ticket = ticket or uuid.uuid4().hex
        order = sorted(queue, key=lambda t: (queue[t], t))  # as the store's sorted set ranks them
        held = self._holders.get(holder, -math.inf)
        ahead = order.index(ticket) if ticket in queue else len(order)
        if held > now or (ticket not in queue and ahead > 0):
            ask = max(held, now) + ahead * self._interval
            earliest = ask + self._interval if held > now else ask
            if earliest - now > max_wait:
                queue.pop(ticket, None)
                self._queued_again(holder, queue)
                return CreateTurn(False, earliest - now, 0)
            queue.setdefault(ticket, now + max_wait)
            self._queued_again(holder, queue)
            return CreateTurn(False, ask - now, 0, queued=True)
        queue.pop(ticket, None)
        self._queued_again(holder, queue)
        turn = self._cold(max_wait, ticket, now)
        if turn.granted:
            self._holders[holder] = now + turn.wait
        return turn

    async def turn_of(self, what: str, keep_seconds: float, longest: float = math.inf) -> CreateTurn:
        now = self._clock()
        while self._turns and next(iter(self._turns.values()))[1] <= now:  # kept alike: the oldest run out first
            del self._turns[next(iter(self._turns))]
        if what not in self._turns:
            hole = self._take_hole(now, longest)
            if hole is None:
                due = max(self._due, now)
                wait = max(0.0, due + self._interval - self._burst * self._interval - now)
                if wait > longest:
                    return CreateTurn(False, wait, 0)
                hole = now + wait
                self._due = due + self._interval
            self._turns[what] = (hole, now + keep_seconds)
        return CreateTurn(True, max(0.0, self._turns[what][0] - now), 0)

    async def give_back(self, ticket: str, holder: str | None = None) -> None:
        now = self._clock()
        if holder is not None and ticket in self._queued.get(holder, {}):
            del self._queued[holder][ticket]
            if not self._queued[holder]:
                del self._queued[holder]
        due = self._given.pop(ticket, None)
        if due is None or due <= now:
            return
        if holder is not None and self._holders.get(holder) == due:
            del self._holders[holder]
        self._free(due)

    async def give_back_turn(self, what: str) -> None:
        due, _ = self._turns.pop(what, (-math.inf, 0.0))
        if due > self._clock():
            self._free(due)

    def _take_hole(self, now: float, longest: float) -> float | None:
        """The earliest turn given back still to come, where due within `longest` (given_turns.py)."""
        self._holes[:] = [h for h in self._holes if h >= now]
        return self._holes.pop(0) if self._holes and self._holes[0] - now <= longest else None

    def _record_given(self, ticket: str, due: float, now: float) -> None:
        if ticket:
            for passed in [t for t, d in self._given.items() if d <= now]:
                del self._given[passed]
            self._given[ticket] = due

    def _free(self, due: float) -> None:
        """As the store's script: the bucket's last turn steps its arrival time back, any other is a hole."""
        spread = self._burst * self._interval
        if not math.isclose(due + spread, self._due, rel_tol=0.0, abs_tol=1e-6):
            bisect.insort(self._holes, due)
            return
        self._due -= self._interval
        while (found := next((h for h in self._holes
                              if math.isclose(h, self._due - spread, rel_tol=0.0, abs_tol=1e-6)), None)) is not None:
            self._holes.remove(found)
            self._due -= self._interval

    def _queued_again(self, holder: str, queue: dict[str, float]) -> None:
        if queue:
            self._queued[holder] = queue

    def _turn(self, mode: str, max_wait: float, now: float | None = None) -> CreateTurn:
        now = self._clock() if now is None else now
        due = max(self._due, now)
        wait = max(0.0, due + self._interval - self._burst * self._interval - now)
        spare = max(0, math.floor(self._burst - self._headroom - (due - now) / self._interval + 1e-9))
        if mode == "cold" and wait <= max_wait:
            self._due = due + self._interval
            return CreateTurn(True, wait, max(0, spare - 1))
        if mode == "refill" and spare >= 1:
            self._due = due + self._interval
            return CreateTurn(True, 0.0, spare - 1)
        return CreateTurn(False, wait, spare)


class LocalCredentialCounts:
    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}  # caller → credential → its expiry

    async def take(self, caller: str, handle: str, now: float, expires: float, bound: int) -> float:
        held = self._held.setdefault(caller, {})
        for old, expiry in list(held.items()):
            if expiry <= now:
                del held[old]
        if len(held) >= bound:
            return float(max(math.ceil(min(held.values()) - now), 1))
        held[handle] = expires
        return 0.0

    async def give_back(self, caller: str, handle: str) -> None:
        self._held.get(caller, {}).pop(handle, None)


class ClaimsFull(StoreUnavailable):
    """This process already holds `most` live first claims: a new one is refused, as while a store
    does not answer, rather than forgetting a live one (a key's replay elsewhere would then start a
    second session)."""


class LocalFirstClaims:
    """`FirstClaims` in this process's memory: at most `most` at once, those run out forgotten first;
    past that, `ClaimsFull`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, most: int = MAX_REMEMBERED) -> None:
        self._clock = clock
        self._most = most
        self._held: dict[str, tuple[str, float]] = {}  # what → (value, until when), oldest first

    async def first(self, what: str, value: str, seconds: float) -> str:
        now = self._clock()
        held = self._held.get(what)
        if held is not None and held[1] > now:
            return held[0]
        self._held.pop(what, None)
        if len(self._held) >= self._most:
            for old, (_, until) in list(self._held.items()):
                if until <= now:
                    del self._held[old]
            if len(self._held) >= self._most:
                raise ClaimsFull(f"{self._most} records are held here at once")
        self._held[what] = (value, now + seconds)
        return value

    async def held(self, what: str) -> str | None:
        held = self._held.get(what)
        return held[0] if held is not None and held[1] > self._clock() else None

    async def keep(self, what: str, value: str, seconds: float) -> bool:
        held = self._held.get(what)
        if held is None or held[0] != value or held[1] <= self._clock():
            return False
        self._held[what] = (value, self._clock() + seconds)
        return True

    async def let_go(self, what: str, value: str) -> None:
        if (held := self._held.get(what)) is not None and held[0] == value:
            del self._held[what]

    async def swap(self, what: str, value: str, new: str, seconds: float) -> bool:
        held = self._held.get(what)
        if held is None or held[0] != value or held[1] <= self._clock():
            return False
        self._held[what] = (new, self._clock() + seconds)
        return True


class LocalOnce:
    def __init__(self, clock: Callable[[], float] = time.monotonic, most: int = MAX_REMEMBERED) -> None:
        self._clock = clock
        self._most = most
        self._until: dict[str, float] = {}  # what → until when it is remembered, oldest first

    async def first_use(self, what: str, seconds: float) -> bool:
        now = self._clock()
        if self._until.get(what, now) > now:
            return False
        if len(self._until) >= self._most:
            for old, until in list(self._until.items()):
                if until <= now:
                    del self._until[old]
            while len(self._until) >= self._most:  # the oldest goes first
                del self._until[next(iter(self._until))]
        self._until.pop(what, None)
        self._until[what] = now + seconds
        return True

    async def release(self, what: str) -> None:
        self._until.pop(what, None)


class LocalPool:
    """One process's reserve: its own bots, its own starts; it always plans (there is nobody else)
    and its planner's state lives as long as the process. A replica's fallback when the store does
    not answer (dispatcher/store/forgiving.py): it then plans for the bots it holds itself."""

    def __init__(self) -> None:
        self._view: ReplicaPool | None = None
        self._arrivals: deque[tuple[float, bool]] = deque(maxlen=MAX_ARRIVALS)
        self._state: dict[str, Any] | None = None
        self._cold_starts: deque[float] = deque(maxlen=MAX_COLD_STARTS)

    async def publish(self, view: ReplicaPool) -> None:
        self._view = view

    async def views(self) -> list[ReplicaPool]:
        return [] if self._view is None else [self._view]

    async def withdraw(self) -> None:
        self._view = None

    async def arrived(self, epoch: float, *, cold: bool) -> None:
        self._arrivals.append((epoch, cold))

    async def arrivals(self) -> list[tuple[float, bool]]:
        taken = sorted(self._arrivals)
        self._arrivals.clear()
        return taken

    async def plan_lease(self) -> bool:
        return True

    async def plan_lease_in_store(self) -> bool:
        return True  # one process: its own store

    async def let_go(self) -> None:
        pass

    async def save(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)

    async def load(self) -> dict[str, Any] | None:
        return self._state

    async def started_cold(self, seconds: float) -> None:
        self._cold_starts.append(seconds)

    async def cold_starts(self) -> list[float]:
        return list(self._cold_starts)
