"""The runtime settings (capacity values and the API keys an admin made), their audit trail and the
nudge that tells every replica to read them again: in this process's memory (one dispatcher) or in
the store (several replicas).

In the store the settings are one JSON record beside its version, replaced only when that version is
still the one the writer read (a compare in a Lua script, as the releases' record), so two admins'
changes at two replicas never silently overwrite each other. After a write the writer PUBLISHes a
nudge on one channel; every replica subscribed to it reads the record at once, and reads it once a
second anyway (a nudge lost in an outage costs a second, never a change). A nudge carries nothing:
one forged by whoever may publish there only makes the replicas read the record again.

Each key's use (when a replica last saw it, how many sessions it started) is kept apart, in a hash
written by a script (the store user runs HSET only inside scripts), so a busy key never races an
admin's change of the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dispatcher.store.audit_trail import MemoryTrail, StoreTrail
from dispatcher.store.client import Store
from dispatcher.store.release_book import READ_WITH_VERSION, WRITE_AT_VERSION
from dispatcher.store.subscription import listen_forever, subscriber

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

_USED = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local sessions = 0
if raw then
  local found = string.match(raw, '^[^|]*|(%d+)$')
  if found then sessions = tonumber(found) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. (sessions + tonumber(ARGV[3])))
return 1
"""
_USES = """
return redis.call('HGETALL', KEYS[1])
"""


class MemoryRuntimeBook:
    """One process: the record in memory; a write tells this process's listener at once."""

    def __init__(self) -> None:
        self._record: dict[str, Any] | None = None
        self._uses: dict[str, tuple[float, int]] = {}
        self._trail = MemoryTrail()
        self._changed: Callable[[], None] | None = None

    async def read(self) -> dict[str, Any] | None:
        return None if self._record is None else json.loads(json.dumps(self._record))

    async def write(self, record: Mapping[str, Any], replaces: int | None) -> bool:
        current = None if self._record is None else self._record.get("version")
        if current != replaces:
            return False
        self._record = json.loads(json.dumps(record))
        return True

    async def nudge(self) -> None:
        if self._changed is not None:
            self._changed()

    async def listen(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    async def used(self, name: str, at: float, sessions: int) -> None:
        _, before = self._uses.get(name, (0.0, 0))
        self._uses[name] = (at, before + sessions)

    async def uses(self) -> dict[str, tuple[float, int]]:
        return dict(self._uses)

    async def note(self, line: Mapping[str, Any]) -> None:
        await self._trail.note(line)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._trail.history(limit)

    async def aclose(self) -> None:
        self._changed = None


class StoreRuntimeBook:
    """Several replicas: the record, the uses and the trail in the store, the nudge on its pub/sub."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._record_key = store.key("runtime", "settings")
        self._uses_key = store.key("runtime", "uses")
        self.channel = store.key("runtime", "changed")
        self._trail = StoreTrail(store, "audit", "runtime")
        self._read = store.redis.register_script(READ_WITH_VERSION)
        self._write = store.redis.register_script(WRITE_AT_VERSION)
        self._used = store.redis.register_script(_USED)
        self._uses = store.redis.register_script(_USES)
        self._subscriber: Redis | None = None
        self._listening: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def read(self) -> dict[str, Any] | None:
        """The record, or None before the first; one that is no JSON object reads as `{}` with the
        stored version, so the next write (naming that version) replaces it."""
        answer = await self._store.call(lambda: self._read(keys=[self._record_key]))
        raw, version = [*list(answer or []), None, None][:2]
        if raw is None and version is None:
            return None
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            value = None
        stored = int(version) if version is not None and str(version).lstrip("-").isdigit() else None
        if isinstance(value, dict) and value.get("version") == stored:
            return value
        return {"version": stored}

    async def write(self, record: Mapping[str, Any], replaces: int | None) -> bool:
        expected = "" if replaces is None else str(replaces)
        value = json.dumps(record, separators=(",", ":"))
        return bool(await self._store.call(lambda: self._write(keys=[self._record_key],
                                                                args=[value, str(record["version"]), expected])))

    async def nudge(self) -> None:
        """Tells every replica to read the record now (each reads it once a second anyway)."""
        await self._store.call(lambda: self._store.redis.publish(self.channel, "1"))

    async def listen(self, changed: Callable[[], None]) -> None:
        """Calls `changed` at each nudge, subscribed again whenever the store drops the subscription
        (each subscription is followed by a read too: a nudge may have been lost meanwhile)."""
        if self._listening is not None:
            return
        client = self._subscriber = subscriber(self._store.settings, decode_responses=True)

        async def subscribe(pubsub: PubSub) -> None:
            await pubsub.subscribe(self.channel)
            changed()

        self._listening = asyncio.create_task(
            listen_forever(lambda: client.pubsub(ignore_subscribe_messages=True), subscribe,
                           lambda _message: changed(), self.subscribed, "runtime settings"),
            name="runtime-settings")

    async def used(self, name: str, at: float, sessions: int) -> None:
        """Key `name` was seen at `at` (epoch seconds), having started `sessions` more sessions."""
        await self._store.call(lambda: self._used(keys=[self._uses_key], args=[name, repr(at), sessions]))

    async def uses(self) -> dict[str, tuple[float, int]]:
        """Each key's last use (epoch seconds) and sessions started."""
        flat = await self._store.call(lambda: self._uses(keys=[self._uses_key]))
        found: dict[str, tuple[float, int]] = {}
        for name, value in zip(flat[::2], flat[1::2], strict=True):
            at, _, sessions = str(value).partition("|")
            with contextlib.suppress(ValueError):
                found[str(name)] = (float(at), int(sessions))
        return found

    async def note(self, line: Mapping[str, Any]) -> None:
        await self._trail.note(line)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._trail.history(limit)

    async def aclose(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        if self._subscriber is not None:
            await self._subscriber.aclose()
