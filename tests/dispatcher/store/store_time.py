"""Time in the store tests moves when a test says so, never by waiting for a wall clock.

`advance` stands for the store's clock moving on: every key of the test (its prefix) with a time
to live loses `seconds` of it, and one whose time runs out meanwhile is deleted, as the store
would have expired it. `Sleeps` is an injectable `asyncio.sleep` whose sleepers wake only when the
test lets them (after moving the store's clock by what they asked for), so a renewal or a waiter's
next try happens at a step the test names, however loaded the machine is.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from dispatcher.store.client import Store

_ADVANCE = """
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left >= 0 then
    if left <= tonumber(ARGV[1]) then
      redis.call('DEL', key)
    else
      redis.call('PEXPIRE', key, left - tonumber(ARGV[1]))
    end
  end
end
return 0
"""


async def advance(admin: Redis, store: Store, seconds: float) -> None:
    """The store's clock moves `seconds` on for this test's keys (those under `store`'s prefix);
    `admin` does it, since the replicas' own user may not (conftest.py `admin`)."""
    keys = [key async for key in admin.scan_iter(match=f"{store.key('*')}")]
    if keys:
        await admin.eval(_ADVANCE, len(keys), *keys, int(seconds * 1000))


class Sleeps:
    """`asyncio.sleep` with a knob: each sleeper waits until the test wakes it."""

    def __init__(self) -> None:
        self._sleepers: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.put_nowait((seconds, woken))
        await woken

    async def next(self) -> tuple[float, asyncio.Future[None]]:
        """The next sleeper (how long it asked to sleep, and what wakes it), once one sleeps."""
        return await asyncio.wait_for(self._sleepers.get(), 30)  # a bound on a hang, not a timing

    async def pass_time(self, admin: Redis, store: Store) -> float:
        """The next sleeper's sleep happens: the store's clock moves on by it, then it wakes."""
        seconds, woken = await self.next()
        await advance(admin, store, seconds)
        woken.set_result(None)
        return seconds
