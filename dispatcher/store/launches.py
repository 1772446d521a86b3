"""Admission across replicas: launches under way or just made, counted in one place.

The provider's list says how many sessions run, but only after a launch lands there, and each
replica's own tally of launches since its last count misses the others'. With a store, every
admitted launch is recorded in one sorted set, `launches`, scored with the store's clock (µs); a start
is admitted by one script only if the provider's last count plus the launches recorded since
that count was asked for stays under the cap. A launch in flight is scored in the future (its
admission plus the keep time), so every count counts it until it lands; one that lands moves to
its landing time (a count asked for later sees it at the provider); one that fails is removed.
Entries older than the keep time are dropped: by then a recount has seen them, and a launch whose
replica died in flight stops counting.

The provider's count is the deployment's too (`launches:count`: the count and the store time it
was asked for): a replica due to recount uses one asked for within the refresh window; else one
replica takes `launches:counting` (a lease as long as the keep time) and lists the provider while
the others wait for its count, so the deployment lists about once per refresh whatever the number
of replicas. A count that fails lets the lease go (the next replica due counts); a replica that
waits past the lease, or whose store does not answer, counts for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from functools import partial

from dispatcher.store.client import Store
from dispatcher.store.coordination import AtCapacity
from dispatcher.store.forgiving import forgiving, nothing
from dispatcher.store.key_sessions import HOLD_FUNCTION, Held, held_ages, key_of
from dispatcher.store.leases import Leases
from dispatcher.store.memory import LocalLaunches
from dispatcher.store.running_sessions import RECONCILE_SECONDS, RunningSessions
from dispatcher.store.share_ask import ShareAsk, ShareHeld, share_then_cap
from dispatcher.store.together import together

SHARE_HELD = -2  # the start's admission: the key's share refuses (see `_SHARE_AND_ADMIT`)
USE, COUNT = 1, 2  # the deployment's count is fresh: use it; nobody is counting: count (else wait)
COUNT_POLL_SECONDS = 0.05  # how often a replica waiting for another's count looks for it

# A Lua function: records `token` (a launch) as in flight until `now + keep` (µs, the store's clock)
# if the provider's count `counted` plus the launches recorded since it was asked for (`since`)
# stays under `limit`, dropping those older than `keep`; returns that sum, else -1 (nothing recorded).
_ADMIT_FUNCTION = """
local function admit(key, counted, since, limit, keep, token, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
  local running = counted + redis.call('ZCOUNT', key, since, '+inf')
  if running >= limit then
    return -1
  end
  redis.call('ZADD', key, now + keep, token)
  return running
end
"""
_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
"""
# KEYS[1]: the launches. ARGV: the count, when it was asked for (µs), the cap, the keep time (µs), the launch.
_ADMIT = _ADMIT_FUNCTION + _NOW + """
return admit(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], now)
"""
# The key's share, then the cap, in one step (dispatcher/store/share_ask.py). KEYS: the launches, the
# key's sessions (dispatcher/store/key_sessions.py). ARGV: as `_ADMIT`'s, then the share, the
# session, how long its record lasts (µs). Returns {the sum (admitted), now}; {-1, now}: the cap
# refuses (the key's place given back); {-2, now, each held session and when it was recorded}: the
# share refuses (nothing taken).
_SHARE_AND_ADMIT = HOLD_FUNCTION + _ADMIT_FUNCTION + _NOW + """
local held = hold(KEYS[2], tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), now)
if held then
  table.insert(held, 1, now)
  table.insert(held, 1, -2)
  return held
end
local running = admit(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], now)
if running < 0 then
  redis.call('ZREM', KEYS[2], ARGV[7])
end
return {running, now}
"""
# ARGV: the oldest count usable (store µs; 0: the refresh window back from now), the refresh
# window (µs), the lease (ms), this replica's lease token, how long a reconcile of the running
# sessions stands in for a count (µs; 0: never), the launches' keep time (µs). KEYS[3], [4]: the
# running sessions and their reconcile's time (dispatcher/store/running_sessions.py); KEYS[5], [6]: the
# launches and those landed naming their session. The running sessions stand in only while every
# launch landed since the reconcile named its session: a previous-version replica's landing names
# none, is in no running set, and sends the count to the provider (its list reconciles at once).
# Returns {mode, count, asked at, now}: 1, the count to use and when it was asked for; 2, count
# (the lease is taken), 0 (wait for the replica counting), each with when the count kept was asked for.
_TURN = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local reconciled = tonumber(redis.call('GET', KEYS[4]) or 0)
if tonumber(ARGV[5]) > 0 and now - reconciled < tonumber(ARGV[5]) then
  local since = '(' .. math.max(reconciled, now - tonumber(ARGV[6]))
  if redis.call('ZCOUNT', KEYS[5], since, now) <= redis.call('ZCOUNT', KEYS[6], since, now) then
    return {1, redis.call('ZCARD', KEYS[3]), now, now}
  end
end
local oldest = tonumber(ARGV[1])
if oldest == 0 then oldest = now - tonumber(ARGV[2]) end
local kept = redis.call('HGET', KEYS[1], 'count')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or 0)
if kept and at >= oldest then
  return {1, tonumber(kept), at, now}
end
if redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[3]) then
  return {2, 0, at, now}
end
return {0, 0, at, now}
"""
# ARGV: the count, when it was asked for (store µs), how long it is kept (ms), the lease's token ('' : none).
_COUNTED = """
local kept = tonumber(redis.call('HGET', KEYS[1], 'at') or 0)
if tonumber(ARGV[2]) > kept then
  redis.call('HSET', KEYS[1], 'count', ARGV[1], 'at', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
# KEYS: the launches, the running sessions, the launches landed naming their session. ARGV: the
# launch, its session ('': not told), the launches' keep time (µs).
_LANDED = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
    redis.call('ZADD', KEYS[3], now, ARGV[1])
  end
end
return redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
"""


class SharedLaunches:
    def __init__(self, store: Store, keep_seconds: float) -> None:
        self._store = store
        self._key = store.key("launches")
        self._keep_us = int(keep_seconds * 1_000_000)
        self._admit = store.redis.register_script(_ADMIT)
        self._share_and_admit = store.redis.register_script(_SHARE_AND_ADMIT)
        self._landed = store.redis.register_script(_LANDED)
        self._count_key, self._lease_key = store.key("launches", "count"), store.key("launches", "counting")
        self._named_key = store.key("launches", "named")  # landings that named their session
        self._turn = store.redis.register_script(_TURN)
        self._counted = store.redis.register_script(_COUNTED)
        self._leases = Leases(store)
        self.lease_seconds = keep_seconds
        self.running = RunningSessions(store)

    async def count_turn(self, fresh_seconds: float, oldest: int, token: str,
                         kept_seconds: float = 0.0) -> tuple[int, int, int, int]:
        """Whether to use the deployment's count (1, with it and when it was asked for: the running
        sessions kept, within `kept_seconds` of their reconcile), to count (2: this replica holds the
        lease) or to wait for the replica counting (0); and the store's now."""
        args: list[str | int] = [oldest, int(fresh_seconds * 1_000_000), int(self.lease_seconds * 1000), token,
                                 int(kept_seconds * 1_000_000), self._keep_us]
        keys = [self._count_key, self._lease_key, self.running.key, self.running.reconciled_key, self._key,
                self._named_key]
        mode, counted, at, now = await self._store.call(lambda: self._turn(keys=keys, args=args))
        return int(mode), int(counted), int(at), int(now)

    async def counted(self, counted: int, at: int, token: str) -> None:
        """The deployment's count, asked for at `at` (store µs), for the other replicas; lets the lease go."""
        args: list[str | int] = [counted, at, int(self.lease_seconds * 1000), token]
        await self._store.call(lambda: self._counted(keys=[self._count_key, self._lease_key], args=args))

    async def let_go(self, token: str) -> None:
        await self._leases.release(self._lease_key, token)

    async def now(self) -> int:
        """The store's clock in microseconds (the replicas' own clocks may disagree)."""
        seconds, micros = await self._store.call(self._store.redis.time)
        return int(seconds) * 1_000_000 + int(micros)

    async def admit(self, session_id: str, *, counted: int, counted_at: int, limit: int) -> bool:
        """Records the launch and returns True if the cap allows it, atomically across replicas.
        `counted_at`: the store's clock when the provider count `counted` was asked for."""
        args: list[str | int] = [counted, counted_at, limit, self._keep_us, session_id]
        running = await self._store.call(lambda: self._admit(keys=[self._key], args=args))
        return int(running) >= 0

    async def share_and_admit(self, session_id: str, share: ShareAsk, *, counted: int, counted_at: int,
                              limit: int) -> bool | Held:
        """`admit`, after the key's place in its share, both in one round trip: the held sessions
        when the share refuses (nothing taken), else whether the cap admitted the launch (a cap that
        refuses leaves the key's place as it was)."""
        args: list[str | int] = [counted, counted_at, limit, self._keep_us, session_id,
                                 share.share, share.session_id, int(share.seconds * 1_000_000)]
        keys = [self._key, key_of(self._store, share.caller)]
        answer = await self._store.call(lambda: self._share_and_admit(keys=keys, args=args))
        if int(answer[0]) == SHARE_HELD:
            return held_ages(answer[2:], int(answer[1]))
        return int(answer[0]) >= 0

    async def landed(self, token: str, session_id: str = "") -> None:
        # With whatever else the start writes then (its budgets' ledger open): one round trip.
        await together(self._store).run(self._landed, [self._key, self.running.key, self._named_key],
                                        [token, session_id, self._keep_us])

    async def failed(self, session_id: str) -> None:
        await self._store.call(lambda: self._store.redis.zrem(self._key, session_id))


class RedisLaunches:
    """Admission's tally across replicas: the store's record decides, and this replica keeps its
    own tally too, which decides alone when the store does not answer (as in one process)."""

    def __init__(self, shared: SharedLaunches, alone: LocalLaunches) -> None:
        self._shared = shared
        self._alone = alone
        self._counted_at: int | None = None  # the store's clock when the last count was asked for

    async def recount(self, count: Callable[[], Awaitable[int]], fresh_seconds: float,
                      sessions: Callable[[], Awaitable[Collection[str]]] | None = None) -> float:
        """The deployment's count when one was asked for within `fresh_seconds` (or is being asked
        for by another replica: this one waits for it, at most the lease); else this replica counts
        and records its count for the others. A store that does not answer: this replica counts alone.
        With `sessions` (the provider's active ones), the running sessions kept in the store are the
        count while reconciled within RECONCILE_SECONDS, and this replica's count reconciles them."""
        token, oldest, started = secrets.token_hex(8), 0, time.monotonic()
        kept = RECONCILE_SECONDS if sessions is not None else 0.0
        while True:
            turn = await forgiving(partial(self._shared.count_turn, fresh_seconds, oldest, token, kept), nothing,
                                   "admission's count")
            if turn is None:  # no store: this replica's own count, decided alone (`_counted_at` None)
                age = await self._alone.recount(count, fresh_seconds)
                self._counted_at = None
                return age
            mode, counted, at, now = turn
            if mode == USE:
                age = (now - at) / 1_000_000
                self._alone.count_is(counted, self._alone.asked(age))
                self._counted_at = at
                return age
            if mode == COUNT or time.monotonic() - started > self._shared.lease_seconds:
                listed = count if sessions is None else self._reconciling(sessions, at=now)
                return await self._count(listed, fresh_seconds, at=now, token=token if mode == COUNT else "")
            # Another replica is counting: wait for its count, even one older than the window by then.
            oldest = oldest or at + 1
            await asyncio.sleep(COUNT_POLL_SECONDS)

    async def _count(self, count: Callable[[], Awaitable[int]], fresh_seconds: float, *, at: int, token: str) -> float:
        """This replica lists the provider for the deployment (holding the lease when `token`)."""
        try:
            age = await self._alone.recount(count, fresh_seconds)
        except BaseException:
            if token:  # the next replica due counts, without waiting for the lease to run out
                await forgiving(lambda: self._shared.let_go(token), nothing, "admission's count lease")
            raise
        self._counted_at = at
        counted = self._alone.counted
        await forgiving(lambda: self._shared.counted(counted, at, token), nothing, "admission's count")
        return age

    def _reconciling(self, sessions: Callable[[], Awaitable[Collection[str]]], *,
                     at: int) -> Callable[[], Awaitable[int]]:
        """A count that lists the provider's active sessions and reconciles the kept ones with them."""
        async def count() -> int:
            found = await sessions()
            kept = await forgiving(lambda: self._shared.running.reconcile(found, at), nothing, "the running sessions")
            return len(found) if kept is None else kept  # a partial list's: with what it could not judge
        return count

    async def ended(self, session_id: str) -> None:
        await forgiving(lambda: self._shared.running.ended(session_id), nothing, "the running sessions")

    def current(self) -> int:
        return self._alone.current()

    @contextlib.asynccontextmanager
    async def slot(self, limit: int, share: ShareAsk | None = None, session_id: str = "") -> AsyncIterator[None]:
        token = await self._admit(limit, share)
        if token is None:  # the store did not decide: this replica's own count does
            alone = self._alone.slot(limit)
            async with alone if share is None else share_then_cap(share, alone):
                yield
            return
        launched = False
        try:
            async with self._alone.launching():
                yield
            launched = True
        finally:
            await forgiving(lambda: self._shared.landed(token, session_id) if launched else self._shared.failed(token),
                            nothing, "a launch's record")  # else it ages out of the record

    async def _admit(self, limit: int, share: ShareAsk | None) -> str | None:
        """The token of the launch recorded across replicas (with the key's place, `share`, when
        asked); None when the store did not decide (nothing taken there); raises `ShareHeld` when
        the key holds its share, AtCapacity when every replica's launches together reach the cap."""
        counted_at = self._counted_at
        if counted_at is None:
            return None
        token, counted = secrets.token_hex(8), self._alone.counted
        admitted = await forgiving(
            lambda: self._shared.admit(token, counted=counted, counted_at=counted_at, limit=limit) if share is None
            else self._shared.share_and_admit(token, share, counted=counted, counted_at=counted_at, limit=limit),
            nothing, "admission")
        if isinstance(admitted, dict):
            raise ShareHeld(admitted)
        if admitted is False:
            raise AtCapacity
        return None if admitted is None else token
