"""Limits shared by every replica: GCRA token buckets kept in the store.

- Per-API-key start rates: one key per caller, `rate:<caller>`, holds the bucket's theoretical
  arrival time; one script reads and advances it with the store's own clock (`TIME`), so replicas
  with skewed clocks agree. `burst` calls may come at once, then one per 1/`per_second` seconds.
- The provider's create limit (`create:<name>`, `Coordination.create_limit`): the same bucket,
  taken by every launch at any replica. A cold launch reserves the next token even when it is due
  later (its caller waits for it, at most `max_wait`); a refill takes one only while another
  remains for a cold start, so cold launches go first when tokens are short. Fly's list limit is
  counted by the same bucket (`create:fly-list:<app>`), every list taking its turn as a cold launch.
- A carrier's pace shared between keys (`shared`): the same bucket, and beside it a hash
  (`create-share:<name>`) of each key's turn still due, and per key its queued calls
  (`create-queue:<name>:<key>`, each until its longest wait). A key with a turn due (or calls queued) queues
  the call, told to ask again when the turns before it came, or refuses it at once if its turn could not
  come within its longest wait; so each waiting key holds one turn ahead at a time, their turns
  interleave, and a key's queue stays what the pace serves in that wait.
- A turn or a queued place given back by a call cancelled while it waited: dispatcher/store/given_turns.py.
"""

from __future__ import annotations

import math
import uuid

from dispatcher.store.client import Store
from dispatcher.store.coordination import CreateTurn
from dispatcher.store.given_turns import GIVE_BACK, GIVE_BACK_TURN, RECORD_GIVEN, TAKE_HOLE

_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - burst * interval
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0
"""


class SharedRate:
    def __init__(self, store: Store, per_second: float, burst: int) -> None:
        self._store = store
        self._interval_ms = max(1, int(1000 / per_second))
        self._burst = burst
        self._script = store.redis.register_script(_GCRA)

    async def take(self, caller: str) -> float:
        """0 if the call may go; else the seconds until it could."""
        key = self._store.key("rate", caller)
        wait_ms = await self._store.call(lambda: self._script(keys=[key], args=[self._interval_ms, self._burst]))
        return int(wait_ms) / 1000


# KEYS: the bucket, its given turns, its holes (dispatcher/store/given_turns.py).
# ARGV: interval (ms), burst, mode (cold, refill, look), a cold launch's longest wait (ms), its ticket ('' none).
# Returns {granted (0/1), wait (ms), spare tokens after this one}.
_CREATE = TAKE_HOLE + RECORD_GIVEN + """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mode = ARGV[3]
if mode == 'cold' then
  local hole = take_hole(KEYS[3], now, tonumber(ARGV[4]))
  if hole then
    record_given(KEYS[2], ARGV[5], hole, now)
    return {1, hole - now, 0}
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + interval - burst * interval - now
if wait < 0 then wait = 0 end
local headroom = math.min(1, burst - 1)
local spare = math.floor(burst - headroom - (tat - now) / interval + 1e-9)
if spare < 0 then spare = 0 end
if (mode == 'cold' and wait <= tonumber(ARGV[4])) or (mode == 'refill' and spare >= 1) then
  redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now)
  if mode == 'refill' then wait = 0 end
  if spare > 0 then spare = spare - 1 end
  if mode == 'cold' then record_given(KEYS[2], ARGV[5], now + wait, now) end
  return {1, wait, spare}
end
return {0, wait, spare}
"""


# KEYS: the bucket, its holders' hash, the holder's queued calls (ticket → the call's deadline), the bucket's
# given turns and its holes (dispatcher/store/given_turns.py).
# ARGV: interval (ms), burst, the call's longest wait (ms), the holder, the call's ticket.
# Returns {granted (0/1), wait (ms), queued (0/1)}: queued, the call asks again after `wait`; refused, its
# turn could come no sooner than `wait`.
_SHARED = TAKE_HOLE + RECORD_GIVEN + """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local longest = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or 0)
local queue = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')  -- at most what the pace serves in a wait
local rank, last = false, now
for i = 1, #queue, 2 do
  if queue[i] == ARGV[5] then rank = (i - 1) / 2 end
  last = math.max(last, tonumber(queue[i + 1]))
end
local ahead = rank
if not rank then ahead = #queue / 2 end
if held > now or (not rank and ahead > 0) then
  local ask = math.max(held, now) + ahead * interval
  local earliest = ask
  if held > now then earliest = ask + interval end
  if earliest - now > longest then
    redis.call('ZREM', KEYS[3], ARGV[5])
    return {0, earliest - now, 0}
  end
  if not rank then
    redis.call('ZADD', KEYS[3], now + longest, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], math.max(last, now + longest) - now)
  end
  return {0, ask - now, 1}
end
redis.call('ZREM', KEYS[3], ARGV[5])
local due = take_hole(KEYS[5], now, longest)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if not due then
  due = math.max(now, tat + interval - burst * interval)
  if due - now > longest then
    return {0, due - now, 0}
  end
  tat = tat + interval
  redis.call('SET', KEYS[1], tat, 'PX', tat - now)
end
local holders = redis.call('HGETALL', KEYS[2])
for i = 1, #holders, 2 do
  if tonumber(holders[i + 1]) <= now then redis.call('HDEL', KEYS[2], holders[i]) end
end
redis.call('HSET', KEYS[2], ARGV[4], due)
redis.call('PEXPIRE', KEYS[2], math.max(1, tat - now, due - now + 1))
record_given(KEYS[4], ARGV[5], due, now)
return {1, due - now, 0}
"""


# KEYS: the bucket, the turn's record, the bucket's holes.
# ARGV: interval (ms), burst, the record's life (ms), the longest wait for a turn not yet recorded (ms, -1: none).
# Returns {granted (0/1), wait (ms)}: the recorded turn, taken now if none was (a turn given back first); refused,
# nothing taken, where that turn could come no sooner than the longest wait.
_TURN_OF = TAKE_HOLE + """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local longest = tonumber(ARGV[4])
if longest < 0 then longest = math.huge end
local due = tonumber(redis.call('GET', KEYS[2]) or -1)
if due < 0 then
  due = take_hole(KEYS[3], now, longest)
  if not due then
    local interval = tonumber(ARGV[1])
    local burst = tonumber(ARGV[2])
    local tat = tonumber(redis.call('GET', KEYS[1]) or now)
    if tat < now then tat = now end
    local wait = tat + interval - burst * interval - now
    if wait < 0 then wait = 0 end
    if wait > longest then return {0, wait} end
    redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now)
    due = now + wait
  end
  redis.call('SET', KEYS[2], due, 'PX', ARGV[3])
end
return {1, math.max(0, due - now)}
"""


class SharedCreateLimit:
    def __init__(self, store: Store, name: str, per_second: float, burst: int) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a create limit needs a positive rate and a burst of at least 1")
        self._store = store
        self._key = store.key("create", name)
        self._name = name
        self._interval_ms = max(1, round(1000 / per_second))
        self._burst = burst
        self._script = store.redis.register_script(_CREATE)
        self._holders = store.key("create-share", name)
        self._shared = store.redis.register_script(_SHARED)
        self._turn_of = store.redis.register_script(_TURN_OF)
        self._given = store.key("create-given", name)
        self._holes = store.key("create-free", name)
        self._give_back = store.redis.register_script(GIVE_BACK)
        self._give_back_turn = store.redis.register_script(GIVE_BACK_TURN)

    async def cold(self, max_wait: float, ticket: str = "") -> CreateTurn:
        return await self._turn("cold", max_wait, ticket)

    async def refill(self) -> CreateTurn:
        return await self._turn("refill", 0.0)

    async def look(self) -> CreateTurn:
        return await self._turn("look", 0.0)

    async def shared(self, holder: str, max_wait: float, ticket: str = "") -> CreateTurn:
        args: list[str | int] = [self._interval_ms, self._burst, int(max_wait * 1000), holder,
                                 ticket or uuid.uuid4().hex]
        keys = [self._key, self._holders, self._store.key("create-queue", self._name, holder), self._given,
                self._holes]
        granted, wait_ms, queued = await self._store.call(lambda: self._shared(keys=keys, args=args))
        return CreateTurn(bool(int(granted)), int(wait_ms) / 1000, 0, queued=bool(int(queued)))

    async def turn_of(self, what: str, keep_seconds: float, longest: float = math.inf) -> CreateTurn:
        keys = [self._key, self._turn_key(what), self._holes]
        args = [self._interval_ms, self._burst, max(1, int(keep_seconds * 1000)),
                int(longest * 1000) if math.isfinite(longest) else -1]
        granted, wait_ms = await self._store.call(lambda: self._turn_of(keys=keys, args=args))
        return CreateTurn(bool(int(granted)), int(wait_ms) / 1000, 0)

    async def give_back(self, ticket: str, holder: str | None = None) -> None:
        keys = [self._key, self._holders, self._store.key("create-queue", self._name, holder or ""), self._given,
                self._holes]
        args: list[str | int] = [self._interval_ms, self._burst, holder or "", ticket]
        await self._store.call(lambda: self._give_back(keys=keys, args=args))

    async def give_back_turn(self, what: str) -> None:
        keys = [self._key, self._turn_key(what), self._holes]
        await self._store.call(lambda: self._give_back_turn(keys=keys, args=[self._interval_ms, self._burst]))

    def _turn_key(self, what: str) -> str:
        # Per bucket, as the memory count keeps them: one call's record in the home bucket and in this
        # region's share (`<bucket>@share`) are two turns, each given back to its own bucket.
        return self._store.key("create-turn", self._name, what)

    async def _turn(self, mode: str, max_wait: float, ticket: str = "") -> CreateTurn:
        args: list[str | int] = [self._interval_ms, self._burst, mode, int(max_wait * 1000), ticket]
        keys = [self._key, self._given, self._holes]
        granted, wait_ms, spare = await self._store.call(lambda: self._script(keys=keys, args=args))
        return CreateTurn(bool(int(granted)), int(wait_ms) / 1000, int(spare))
