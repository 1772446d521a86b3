"""What each API key used of its budgets, for the whole deployment: its sessions open now (each with
when it started) and its minutes and spend by period (`minutes:day:2026-11-27`, `dollars:month:2026-11`).

A budgeted key's start is checked and opened in one script (`admit`), so starts at every replica at
once cannot pass a budget together; an unbudgeted key's is opened in the background. Whichever
replica sees the session end (its stop, its bot's end, its machine's end) closes it, adding its
minutes and machine to the periods it ended in; its billed spend replaces that machine once priced
(`spent`). Each step is one script, so a session is counted once however many replicas see its end.
An end seen before its open was taken is kept a day at the session: the open, when it comes, adds
the session's use then and opens nothing, so no session stays open for good counting against its key.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dispatcher.store.budget_in_flight import ESTIMATED, IN_FLIGHT_FUNCTIONS, NO_PRICE, InFlight
from dispatcher.store.budget_open_sum import OPEN_SUM_FUNCTIONS, RECONCILE_SECONDS
from dispatcher.store.client import Store
from dispatcher.store.together import together

KEEP_SECONDS = 40 * 86_400  # a period's usage outlives its month; a session open this long is forgotten
# How long a session's end is kept for an open that has not come yet (one key per session ended in
# that time, ~100 bytes each): a replica holds an open it could not write for as long as the store is
# down, and an outage past a day is an incident in its own right.
ENDED_KEEP_SECONDS = 86_400
# A session's services are added once: its mark outlives the usage rollups' own (three days), so an
# end reported again while its timeline is still read cannot add them twice.
SPENT_MARK_SECONDS = 3 * 86_400
MEMORY_ENDED_KEPT = 10_000
# Only the commands the store's user is granted (stacks/shared/store_access.py): a sum is a read and a
# write of its field, within the script, so no other replica's write comes between them.
# An open whose session has ended already (KEYS[3], a hash, holds its `end`, `dollars` and period
# fields) adds its use to its usage hash (KEYS[4]) instead, as a close would have; one after a close
# (`counted`) does nothing. Its loop is over the hash's reply, as every loop here is bounded.
# Lua: adds a session's use over `seconds` to the usage hash `used` for each (field, unit) pair of
# `pairs` from `from` (minutes; dollars at `dps` a second, none when its billed figure is added
# already; `sessions`: one); returns the machine's dollars it added.
_ADD_USE = """
local function add_use(used, seconds, dps, billed, pairs, from)
  local machine = 0
  for i = from, #pairs, 2 do
    local field, unit = pairs[i], pairs[i + 1]
    local amount = seconds / 60
    if unit == 'dollars' then
      amount = 0
      if not billed then amount = seconds * dps end
      machine = amount
    elseif unit == 'sessions' then
      amount = 1
    end
    local before = tonumber(redis.call('HGET', used, field) or '0')
    redis.call('HSET', used, field, tostring(before + amount))
  end
  return machine
end
"""
# An open whose session has ended already (KEYS[3], a hash, holds its `end`, `dollars` and period
# fields) adds its use to its usage hash (KEYS[4]) instead, as a close would have; one after a close
# (`counted`) does nothing. Its loop is over the hash's reply, as every loop here is bounded.
_OPEN_BODY = """
if redis.call('HGET', KEYS[3], 'counted') then return 0 end
local end_at = redis.call('HGET', KEYS[3], 'end')
if end_at then
  local dollars = tonumber(redis.call('HGET', KEYS[3], 'dollars') or '0')
  local billed = redis.call('HGET', KEYS[3], 'billed')
  local seconds = math.max(0, tonumber(end_at) - tonumber(ARGV[2]))
  local ended = redis.call('HGETALL', KEYS[3])
  local pairs = {}
  for i = 1, #ended, 2 do
    local field = ended[i]
    if field ~= 'end' and field ~= 'dollars' and field ~= 'billed' then
      pairs[#pairs + 1] = field
      pairs[#pairs + 1] = ended[i + 1]
    end
  end
  local machine = add_use(KEYS[4], seconds, dollars, billed, pairs, 1)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'counted', '1', 'machine', tostring(machine))
  if billed then redis.call('HSET', KEYS[3], 'billed', '1') end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  return 0
end
open_moved(KEYS[1], KEYS[5], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
"""
_OPEN = _ADD_USE + OPEN_SUM_FUNCTIONS + _OPEN_BODY
# A start's admission: each budget of its key (ARGV from 10: kind, field, unit, budget) checked
# against the usage, its sessions open now and their spend in flight (ARGV[6..9]: the price, the
# reserve's floor and its two fields, dispatcher/store/budget_in_flight.py), then the session opened
# as `_OPEN` does, in one step: no other replica's start comes between the check and the open.
# The open sessions are read as their kept count and sum (KEYS[5], dispatcher/store/budget_open_sum.py).
# Returns {kind, used, estimated, reserved} for the first budget it would go over (nothing opened).
_ADMIT = _ADD_USE + IN_FLIGHT_FUNCTIONS + OPEN_SUM_FUNCTIONS + """
local at = tonumber(ARGV[2])
local reserve = reserve_of(KEYS[4], ARGV[8], ARGV[9], tonumber(ARGV[7]))
local count, since = open_sum(KEYS[1], KEYS[5], at, """ + str(RECONCILE_SECONDS) + """, ARGV[4])
local flying = in_flight(count, since, at, tonumber(ARGV[6]), reserve)
for i = 10, #ARGV, 4 do
  local unit, budget = ARGV[i + 2], tonumber(ARGV[i + 3])
  local used = count
  if unit ~= 'sessions' then
    used = tonumber(redis.call('HGET', KEYS[4], ARGV[i + 1]) or '0') or 0
    if unit == 'dollars' then used = used + flying else used = used + math.max(0, count * at - since) / 60 end
  end
  if used >= budget then
    local estimated = redis.call('HGET', KEYS[4], '""" + ESTIMATED + """' .. ARGV[i + 1]) or '0'
    local reserved = 0
    if unit == 'dollars' then reserved = count * reserve end
    return {ARGV[i], string.format('%.9f', used), estimated, string.format('%.9f', reserved)}
  end
end
""" + _OPEN_BODY
# A start admitted and then refused (the key's share, the cap) or failed before it ran: its open
# taken back, nothing counted.
_CANCEL = OPEN_SUM_FUNCTIONS + """
if redis.call('HGET', KEYS[1], ARGV[1]) then
  open_moved(KEYS[1], KEYS[3], ARGV[1], false)
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
return 1
"""
# The end of a session no open holds: the key it is open for, if its open came in between (the
# caller closes it then), else its end kept (ARGV[1]: its life in ms; then `end`, `dollars` and each
# period field with its unit, as pairs) for its open, unless one is kept already.
_ENDED = """
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
if not redis.call('HGET', KEYS[2], 'end') and not redis.call('HGET', KEYS[2], 'counted') then
  redis.call('HSET', KEYS[2], unpack(ARGV, 2))
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return false
"""
# Closes a session: its start is taken out of the open hash and, if it was there, its seconds (to
# ARGV[1], the end) turn into minutes, or dollars of machine at ARGV[2] a second (none when its
# billed figure came first), added to each period field given. Its mark (KEYS[4]) keeps the
# machine's dollars, which its billed figure replaces when it comes. KEYS[5]: the kept count and sum.
_CLOSE = _ADD_USE + OPEN_SUM_FUNCTIONS + """
local started = redis.call('HGET', KEYS[1], ARGV[3])
if not started then return false end
local billed = redis.call('HGET', KEYS[4], 'billed')
open_moved(KEYS[1], KEYS[5], ARGV[3], false)
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[4])
local seconds = math.max(0, tonumber(ARGV[1]) - tonumber(started))
local machine = add_use(KEYS[2], seconds, tonumber(ARGV[2]), billed, ARGV, 6)
redis.call('HSET', KEYS[4], 'counted', '1', 'machine', tostring(machine))
if billed then redis.call('HSET', KEYS[4], 'billed', '1') end
redis.call('PEXPIRE', KEYS[4], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return tostring(seconds)
"""
# A session's billed spend (dispatcher/sessions/cost.py `billed_usd`: its machine with its idle
# share, its services and relay), in place of the machine its close added (KEYS[3]'s `machine`) in
# each field from ARGV[6], once whichever replicas add it: KEYS[1] marks it added (ARGV[3]: the
# mark's life in ms); KEYS[3] then says `billed`, so a close after it adds no machine. ARGV: the
# dollars, the usage hash's life (ms), the mark's, the estimated part (a killed bot's services, under
# the first field's estimated one), the session mark's life, then the fields.
_SPENT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local machine = tonumber(redis.call('HGET', KEYS[3], 'machine') or '0') or 0
redis.call('HSET', KEYS[3], 'billed', '1')
redis.call('PEXPIRE', KEYS[3], ARGV[5])
for i = 6, #ARGV do
  local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  redis.call('HSET', KEYS[2], ARGV[i], tostring(before + tonumber(ARGV[1]) - machine))
end
if tonumber(ARGV[4]) > 0 then
  local field = '""" + ESTIMATED + """' .. ARGV[6]
  local estimated = tonumber(redis.call('HGET', KEYS[2], field) or '0')
  redis.call('HSET', KEYS[2], field, tostring(estimated + tonumber(ARGV[4])))
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# Each key's (open hash, usage hash, kept count and sum) keys: its sessions open with their starts'
# sum and their spend in flight (ARGV: now, then as `_ADMIT`'s ARGV[6..9], then the keep time in ms),
# and its usage fields, flat. The sums are strings: a script's numbers reach the client as integers.
_READ = IN_FLIGHT_FUNCTIONS + OPEN_SUM_FUNCTIONS + """
local found = {}
local at = tonumber(ARGV[1])
for i = 1, #KEYS, 3 do
  local reserve = reserve_of(KEYS[i + 1], ARGV[4], ARGV[5], tonumber(ARGV[3]))
  local count, since = open_sum(KEYS[i], KEYS[i + 2], at, """ + str(RECONCILE_SECONDS) + """, ARGV[6])
  local flying = in_flight(count, since, at, tonumber(ARGV[2]), reserve)
  found[#found + 1] = count
  found[#found + 1] = string.format('%.3f', since)
  found[#found + 1] = string.format('%.9f', flying)
  found[#found + 1] = redis.call('HGETALL', KEYS[i + 1])
end
return found
"""


@dataclass(frozen=True)
class Refused:
    """The first budget a start would go over: its kind, what was used, how much of that is estimated,
    and how much the reserves of the key's sessions still running (of a spend budget)."""

    kind: str
    used: float
    estimated: float
    reserved: float = 0.0


Budget = tuple[str, str, str, float]  # a budget to check: its kind, its ledger field, its unit, its limit


class BudgetLedger(Protocol):
    async def open(self, key: str, session_id: str, at: float) -> None: ...

    async def admit(self, key: str, session_id: str, at: float, budgets: Sequence[Budget],
                    in_flight: InFlight) -> Refused | None:
        """Opens the session unless one of `budgets` is reached, checked in the same step (None: opened)."""
        ...

    async def cancel(self, key: str, session_id: str) -> None:
        """Takes back the open of a start refused or failed after its admission: nothing counted."""
        ...

    async def owner(self, session_id: str) -> str | None:
        """The key an open session is counted for (None: not open, or closed already)."""
        ...

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        """Closes the session (None: not open, or closed already) and adds its use to each field
        (field → "minutes", "dollars" or "sessions"); its seconds. An open of it after this opens nothing."""
        ...

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        """The end of a session `owner` found no open for: the key it is open for if its open was
        taken since (close it then), else None, its end kept so that its open counts it at once."""
        ...

    async def first(self, what: str, seconds: float) -> bool:
        """True the first time any replica asks about `what` within `seconds`."""
        ...

    async def spent(self, key: str, session_id: str, billed: float, fields: Sequence[str],
                    estimated: float = 0.0) -> bool:
        """A session's billed dollars in each of `fields`, in place of the machine its close added,
        once per session (True: added here); `estimated` of them also under ESTIMATED + the first."""
        ...

    async def read(self, keys: Iterable[str], at: float = 0.0,
                   in_flight: InFlight = NO_PRICE) -> dict[str, dict[str, float]]:
        """Each key's fields, its sessions open now (`sessions`), the sum of their starts
        (`open_since`, epoch seconds) and their spend in flight at `at` (`in_flight`)."""
        ...


class MemoryBudgetLedger:
    """One replica: the ledger in its memory, counting as the store's scripts do."""

    def __init__(self) -> None:
        self._open: dict[str, dict[str, float]] = {}
        self._since: dict[str, float] = {}  # per key, its open sessions' starts summed (no pass at a start)
        self._owners: dict[str, str] = {}
        self._used: dict[str, dict[str, float]] = {}
        self._seen: set[str] = set()
        self._spent: OrderedDict[str, float | None] = OrderedDict()  # sessions whose billed spend is added
        # Per session ended: the machine's dollars its close added, or None once its billed figure is.
        self._machine: OrderedDict[str, float | None] = OrderedDict()
        # Ends no open held yet, the newest kept: in one process an open is taken before its end.
        self._ended: OrderedDict[str, tuple[float, float, Mapping[str, str]]] = OrderedDict()

    async def open(self, key: str, session_id: str, at: float) -> None:
        end = self._ended.pop(session_id, None)
        if end is not None:
            self._add(key, session_id, max(0.0, end[0] - at), end[1], end[2])
            return
        self._opened(key, session_id, at)

    def _opened(self, key: str, session_id: str, at: float | None) -> float | None:
        """Opens the session at `at`, or (None) takes it out of its key's open ones: when it started."""
        sessions = self._open.setdefault(key, {})
        started = sessions.pop(session_id, None)
        if started is not None:
            self._since[key] -= started
            self._owners.pop(session_id, None)
        if at is not None:
            sessions[session_id] = at
            self._since[key] = self._since.get(key, 0.0) + at
            self._owners[session_id] = key
        if not sessions:
            self._open.pop(key, None)
            self._since.pop(key, None)
        return started

    async def admit(self, key: str, session_id: str, at: float, budgets: Sequence[Budget],
                    in_flight: InFlight) -> Refused | None:
        used = self._used.get(key, {})
        count, since = float(len(self._open.get(key, {}))), self._since.get(key, 0.0)
        for kind, field, unit, budget in budgets:
            figure, reserved = count, 0.0
            if unit == "dollars":
                figure = used.get(field, 0.0) + in_flight.dollars(count, since, at, used)
                reserved = count * in_flight.reserve(used)
            elif unit != "sessions":
                figure = used.get(field, 0.0) + max(0.0, count * at - since) / 60
            if figure >= budget:
                return Refused(kind, figure, used.get(ESTIMATED + field, 0.0), reserved)
        await self.open(key, session_id, at)
        return None

    async def cancel(self, key: str, session_id: str) -> None:
        self._opened(key, session_id, None)

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        if session_id in self._owners:
            return self._owners[session_id]
        self._ended.setdefault(session_id, (at, dollars_per_second, dict(fields)))
        while len(self._ended) > MEMORY_ENDED_KEPT:
            self._ended.popitem(last=False)
        return None

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)

    async def first(self, what: str, seconds: float) -> bool:
        found = what in self._seen
        self._seen.add(what)
        return not found

    async def spent(self, key: str, session_id: str, billed: float, fields: Sequence[str],
                    estimated: float = 0.0) -> bool:
        if session_id in self._spent:
            return False
        _kept(self._spent, session_id, None)
        machine = self._machine.get(session_id) or 0.0
        _kept(self._machine, session_id, None)
        used = self._used.setdefault(key, {})
        for field in fields:
            used[field] = used.get(field, 0.0) + billed - machine
        if estimated > 0 and fields:
            used[ESTIMATED + fields[0]] = used.get(ESTIMATED + fields[0], 0.0) + estimated
        return True

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        started = self._opened(key, session_id, None)
        if started is None:
            return None
        seconds = max(0.0, at - started)
        self._add(key, session_id, seconds, dollars_per_second, fields)
        return seconds

    def _add(self, key: str, session_id: str, seconds: float, dollars_per_second: float,
             fields: Mapping[str, str]) -> None:
        used = self._used.setdefault(key, {})
        billed = session_id in self._machine and self._machine[session_id] is None
        machine = 0.0 if billed else seconds * dollars_per_second
        for field, unit in fields.items():
            amount = machine if unit == "dollars" else 1.0 if unit == "sessions" else seconds / 60
            used[field] = used.get(field, 0.0) + amount
        if not billed:
            _kept(self._machine, session_id, machine)

    async def read(self, keys: Iterable[str], at: float = 0.0,
                   in_flight: InFlight = NO_PRICE) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for key in keys:
            used, count, since = self._used.get(key, {}), float(len(self._open.get(key, {}))), self._since.get(key, 0.0)
            found[key] = {**used, "sessions": count, "open_since": since,
                          "in_flight": in_flight.dollars(count, since, at, used)}
        return found


def _kept(marks: OrderedDict[str, float | None], session_id: str, value: float | None) -> None:
    marks[session_id] = value
    while len(marks) > MEMORY_ENDED_KEPT:
        marks.popitem(last=False)


class StoreBudgetLedger:
    """Several replicas: the ledger in the store, a hash of open sessions and one of usage per key."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._open = store.redis.register_script(_OPEN)
        self._admit = store.redis.register_script(_ADMIT)
        self._cancel = store.redis.register_script(_CANCEL)
        self._close = store.redis.register_script(_CLOSE)
        self._read = store.redis.register_script(_READ)
        self._ended = store.redis.register_script(_ENDED)
        self._spent = store.redis.register_script(_SPENT)

    def _keys(self, key: str) -> list[str]:
        return [self._store.key("budget", "open", key), self._store.key("budget", "used", key)]

    def _kept_key(self, key: str) -> str:
        """The key's open sessions counted and summed (dispatcher/store/budget_open_sum.py)."""
        return self._store.key("budget", "open-sum", key)

    def _owner_key(self, session_id: str) -> str:
        return self._store.key("budget", "owner", session_id)

    def _ended_key(self, session_id: str) -> str:
        return self._store.key("budget", "ended", session_id)

    async def open(self, key: str, session_id: str, at: float) -> None:
        open_hash, used_hash = self._keys(key)
        keys = [open_hash, self._owner_key(session_id), self._ended_key(session_id), used_hash, self._kept_key(key)]
        args = [session_id, repr(at), key, str(KEEP_SECONDS * 1000), str(ENDED_KEEP_SECONDS * 1000)]
        # It goes with the launch's record the start writes as its admission ends (one round trip).
        await together(self._store).run(self._open, keys, args)

    async def admit(self, key: str, session_id: str, at: float, budgets: Sequence[Budget],
                    in_flight: InFlight) -> Refused | None:
        open_hash, used_hash = self._keys(key)
        keys = [open_hash, self._owner_key(session_id), self._ended_key(session_id), used_hash, self._kept_key(key)]
        args = [session_id, repr(at), key, str(KEEP_SECONDS * 1000), str(ENDED_KEEP_SECONDS * 1000),
                *in_flight.args()]
        for kind, field, unit, budget in budgets:
            args += [kind, field, unit, repr(float(budget))]
        answer = await self._store.call(lambda: self._admit(keys=keys, args=args))
        if not isinstance(answer, list):
            return None
        kind, used, estimated, reserved = (str(part) for part in answer)
        return Refused(kind, _number(used), _number(estimated), _number(reserved))

    async def cancel(self, key: str, session_id: str) -> None:
        keys = [self._keys(key)[0], self._owner_key(session_id), self._kept_key(key)]
        await self._store.call(lambda: self._cancel(keys=keys, args=[session_id]))

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        keys = [self._owner_key(session_id), self._ended_key(session_id)]
        args = [str(ENDED_KEEP_SECONDS * 1000), "end", repr(at), "dollars", repr(dollars_per_second)]
        for field, unit in fields.items():
            args += [field, unit]
        found = await self._store.call(lambda: self._ended(keys=keys, args=args))
        return None if found is None else str(found)

    async def owner(self, session_id: str) -> str | None:
        found = await self._store.call(lambda: self._store.redis.get(self._owner_key(session_id)))
        return None if found is None else str(found)

    async def first(self, what: str, seconds: float) -> bool:
        key = self._store.key("budget", "told", what)
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=max(1, int(seconds)))))

    async def spent(self, key: str, session_id: str, billed: float, fields: Sequence[str],
                    estimated: float = 0.0) -> bool:
        keys = [self._store.key("budget", "spent", session_id), self._keys(key)[1], self._ended_key(session_id)]
        args = [repr(billed), str(KEEP_SECONDS * 1000), str(SPENT_MARK_SECONDS * 1000), repr(estimated),
                str(ENDED_KEEP_SECONDS * 1000), *fields]
        return bool(await self._store.call(lambda: self._spent(keys=keys, args=args)))

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        args: list[str] = [repr(at), repr(dollars_per_second), session_id, str(KEEP_SECONDS * 1000),
                           str(ENDED_KEEP_SECONDS * 1000)]
        for field, unit in fields.items():
            args += [field, unit]
        keys = [*self._keys(key), self._owner_key(session_id), self._ended_key(session_id), self._kept_key(key)]
        answer = await self._store.call(lambda: self._close(keys=keys, args=args))
        return None if answer is None else float(answer)

    async def read(self, keys: Iterable[str], at: float = 0.0,
                   in_flight: InFlight = NO_PRICE) -> dict[str, dict[str, float]]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        flat_keys = [name for key in wanted for name in (*self._keys(key), self._kept_key(key))]
        args = [repr(at), *in_flight.args(), str(KEEP_SECONDS * 1000)]
        answers = await self._store.call(lambda: self._read(keys=flat_keys, args=args))
        found: dict[str, dict[str, float]] = {}
        for n, key in enumerate(wanted):
            count, since, flying, used = answers[4 * n: 4 * n + 4]
            pairs = list(used) if isinstance(used, list) else []
            fields: dict[str, float] = {}
            for field, value in zip(pairs[::2], pairs[1::2], strict=True):
                with contextlib.suppress(ValueError):
                    fields[str(field)] = float(value)
            found[key] = {**fields, "sessions": float(count) if isinstance(count, int) else 0.0,
                          "open_since": _number(since), "in_flight": _number(flying)}
        return found


def _number(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return 0.0


def budget_ledger(coordination: object) -> BudgetLedger:
    """The store's ledger when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreBudgetLedger(store) if isinstance(store, Store) else MemoryBudgetLedger()
