"""Each API key's sessions, counted for the whole deployment: a key's share of the session cap
(dispatcher/sessions/key_share.py) is checked and taken in one step.

With a store, a key's sessions are one sorted set, `launches:key:<caller id>`, each session scored
with when its record runs out (the store's clock, µs): a session admitted past its key's share is
refused by the same script that would record it, so a burst spread over every replica cannot slip
past the share. A record lasts at most the longest a session may run (its bot is stopped by then),
and the share's owner drops those the provider says have ended. `hold_within` takes a place under a
holder (the model service's starts) only while the caller holds no more than its share of them, in
the same script. One process keeps the same records in memory (`LocalKeySessions`), and so does a
replica while its store does not answer.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable

from dispatcher.store.client import Store
from dispatcher.store.forgiving import forgiving
from dispatcher.store.share_ask import CallerShare, HeldBy

# A Lua function (also part of the start's admission, dispatcher/store/launches.py): records
# `session` in the key's set `key` for `lasts` µs from `now` (the store's clock, µs) unless `share`
# are held; else returns every held session and when it was recorded (µs), flattened (nothing recorded).
HOLD_FUNCTION = """
local function hold(key, share, session, lasts, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= share then
    local held = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for i = 2, #held, 2 do held[i] = tostring(tonumber(held[i]) - lasts) end
    return held
  end
  redis.call('ZADD', key, now + lasts, session)
  redis.call('PEXPIRE', key, math.floor(lasts / 1000))
  return nil
end
"""
# KEYS[1]: the key's set. ARGV: the share, the session, how long its record lasts (µs).
# Returns {} when the session is recorded; else what `hold` returns.
_HOLD = HOLD_FUNCTION + """
local t = redis.call('TIME')
return hold(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), t[1] * 1000000 + t[2]) or {}
"""

# `hold` under `holder` (KEYS[1]), unless the caller's own sessions (KEYS[2], each scored with when its
# record runs out) number more than its share of them (ARGV[4]), this session among them. ARGV: as
# `_HOLD`'s, then that share and how long the caller's records last (µs). Returns {} when held; else
# {'holder', now, ...} or {'caller', now, ...} with the held sessions and when each was recorded.
_HOLD_WITHIN = HOLD_FUNCTION + """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[4]) then
  local mine = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 2, #mine, 2 do mine[i] = tostring(tonumber(mine[i]) - tonumber(ARGV[5])) end
  table.insert(mine, 1, now)
  table.insert(mine, 1, 'caller')
  return mine
end
local held = hold(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), now)
if not held then return {} end
table.insert(held, 1, now)
table.insert(held, 1, 'holder')
return held
"""

Held = dict[str, float]  # session → how many seconds ago it was recorded


class LocalKeySessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, dict[str, float]] = {}  # caller → session → when its record runs out
        # Per caller, when each record runs out, soonest first: a start drops the key's expired
        # records without a pass over every session it holds. A record released or held again since
        # is stale here and skipped; the heap is rebuilt when stale ones outnumber the live.
        self._expiries: dict[str, list[tuple[float, str]]] = {}

    async def hold(self, caller: str, session_id: str, share: int, seconds: float) -> Held | None:
        now = self._clock()
        held = self._held.setdefault(caller, {})
        expiries = self._expiries.setdefault(caller, [])
        while expiries and expiries[0][0] <= now:
            until, old = heapq.heappop(expiries)
            if held.get(old) == until:
                del held[old]
        if len(held) >= share:
            return {s: now - (until - seconds) for s, until in held.items()}
        held[session_id] = now + seconds
        heapq.heappush(expiries, (now + seconds, session_id))
        if len(expiries) > 2 * len(held) + 64:
            self._expiries[caller] = [(until, s) for s, until in held.items()]
            heapq.heapify(self._expiries[caller])
        return None

    async def hold_within(self, holder: str, session_id: str, share: int, seconds: float,
                          caller: CallerShare) -> HeldBy | None:
        now = self._clock()
        mine = {s: until for s, until in self._held.get(caller.caller, {}).items() if until > now}
        if len(mine) > caller.share:
            return HeldBy("caller", {s: now - (until - caller.seconds) for s, until in mine.items()})
        held = await self.hold(holder, session_id, share, seconds)
        return None if held is None else HeldBy("holder", held)

    async def release(self, caller: str, session_ids: Iterable[str]) -> None:
        held = self._held.get(caller, {})
        for session_id in session_ids:
            held.pop(session_id, None)
        if not held:
            self._held.pop(caller, None)
            self._expiries.pop(caller, None)


class SharedKeySessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._hold = store.redis.register_script(_HOLD)
        self._hold_within = store.redis.register_script(_HOLD_WITHIN)

    def _key(self, caller: str) -> str:
        return key_of(self._store, caller)

    async def hold(self, caller: str, session_id: str, share: int, seconds: float) -> Held | None:
        key = self._key(caller)
        args: list[int | str] = [share, session_id, int(seconds * 1_000_000)]
        held = await self._store.call(lambda: self._hold(keys=[key], args=args))
        if not held:
            return None
        now = await self._store.call(self._store.redis.time)
        return held_ages(held, int(now[0]) * 1_000_000 + int(now[1]))

    async def hold_within(self, holder: str, session_id: str, share: int, seconds: float,
                          caller: CallerShare) -> HeldBy | None:
        keys = [self._key(holder), self._key(caller.caller)]
        args: list[int | str] = [share, session_id, int(seconds * 1_000_000), caller.share,
                                 int(caller.seconds * 1_000_000)]
        answer = await self._store.call(lambda: self._hold_within(keys=keys, args=args))
        if not answer:
            return None
        return HeldBy(_text(answer[0]), held_ages(answer[2:], int(answer[1])))

    async def release(self, caller: str, session_ids: Iterable[str]) -> None:
        gone = list(session_ids)
        if gone:
            await self._store.call(lambda: self._store.redis.zrem(self._key(caller), *gone))


class ForgivingKeySessions:
    def __init__(self, shared: SharedKeySessions, alone: LocalKeySessions) -> None:
        self._shared, self._alone = shared, alone

    async def hold(self, caller: str, session_id: str, share: int, seconds: float) -> Held | None:
        return await forgiving(lambda: self._shared.hold(caller, session_id, share, seconds),
                               lambda: self._alone.hold(caller, session_id, share, seconds), "a key's sessions")

    async def hold_within(self, holder: str, session_id: str, share: int, seconds: float,
                          caller: CallerShare) -> HeldBy | None:
        return await forgiving(lambda: self._shared.hold_within(holder, session_id, share, seconds, caller),
                               lambda: self._alone.hold_within(holder, session_id, share, seconds, caller),
                               "a key's sessions")

    async def release(self, caller: str, session_ids: Iterable[str]) -> None:
        gone = list(session_ids)
        await forgiving(lambda: self._shared.release(caller, gone), lambda: self._alone.release(caller, gone),
                        "a key's sessions")


def key_of(store: Store, caller: str) -> str:
    """The store's set of `caller`'s sessions."""
    return store.key("launches", "key", caller)


def held_ages(held: list[str | bytes], now_us: int) -> Held:
    """`hold`'s refusal (each session and when it was recorded, flattened) as each session's age."""
    pairs = zip(held[0::2], held[1::2], strict=True)
    return {_text(s): (now_us - float(at)) / 1_000_000 for s, at in pairs}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
