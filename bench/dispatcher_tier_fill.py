"""More live sessions than real starts could make in the time: copies of one session a replica
started, each under a new id, written as a start writes them.

A copy is made with the dispatcher's own writes, never keys by hand: its index entry
(`StoreSessionIndex.opened`), its timeline's events (`StoreTimelines.append`) read back from the
store and given the new id, its open in its key's budget ledger (`StoreBudgetLedger.open`), its
landing among the deployment's running sessions that admission's recount reads
(`SharedLaunches.landed`, under a launch token of its own), its place in its key's share
(`SharedKeySessions.hold`, lasting as long as the original's); and its machine, made at the
providers' fake by Fly's own create (the original's configuration, the new session in its name and
metadata). The original must have landed, and not ended: it is waited for.

Fast: copies go by batches. A batch's writes are queued in one turn of the loop, so the store gets
them in one pipeline, in order (dispatcher/store/together.py, the start's own batching); the key's
places, one script each, go at once over the pool; the machines in one call to the fakes'
`POST /_fly/machines`, which runs Fly's create for each. Not copied (`NOT_COPIED`): the start's
short-lived records, gone within minutes: the store's bytes per session are taken from real starts.
A copy's id is random, without the owner tag a real id carries (made with the replicas' secret): a
key's read of a copy by id is a 404 answered before anything is read, so views are timed on real ones.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from dispatcher.machines.fly.provider import META_SESSION, machine_name
from dispatcher.store.budget_ledger import StoreBudgetLedger
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.key_sessions import SharedKeySessions, key_of
from dispatcher.store.launches import SharedLaunches
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.session_index import StoreSessionIndex
from dispatcher.store.timelines import StoreTimelines
from tests.support.redis_server import RedisServer

FLY_APP = "bench"  # bench.dispatch_burst's FLY_APP
BATCH = 500  # copies a pipeline carries: ~4,000 scripts, well under a second of the store's thread
# The landing's launch keep time is read only for a launch admission recorded, which a copy's never was.
LAUNCH_KEEP_SECONDS = 10.0
# A copy's share may never refuse it: the real starts between the copies meet the key's share as it is.
UNBOUNDED_SHARE = 2**31
# What a start writes of its session that a copy leaves out, by key (the session's id as `<id>`):
# held only while the start runs, or until its bot says hello (minutes), then gone.
NOT_COPIED = ("{voicefleet}:start:<id>",  # the keyed start's lease, let go as the start ends
              "{voicefleet}:secrets:<id>")  # the bot's held values, taken at its hello or after minutes
LANDED_WAIT_SECONDS = 60.0


def renamed(value: Any, old: str, new: str) -> Any:
    """`value` with every occurrence of the session id `old` (in keys and strings) made `new`."""
    return json.loads(json.dumps(value).replace(old, new))


@dataclass(frozen=True)
class Original:
    """What a copy repeats of the session copied, as the store and the provider hold it."""

    session_id: str
    entry: dict[str, Any]
    events: list[dict[str, Any]]
    budget_key: str
    machine_config: dict[str, Any]
    place_seconds: float | None  # how much longer its key's place lasts (None: its key has no share)

    def copied(self, session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        """The entry, events and machine configuration of a copy named `session_id`."""
        entry, events, config = renamed((self.entry, self.events, self.machine_config), self.session_id, session_id)
        return entry, events, config


class Copier:
    """The store's writers and the fakes' client, on one store connection."""

    def __init__(self, server: RedisServer, fly: httpx.AsyncClient) -> None:
        self.store = Store(StoreSettings(url=server.url, password=server.password, replica_id="bench-fill",
                                         message_secret=server.message_secret,
                                         # Generous: on a loaded machine the store's core is shared with the fakes.
                                         timeout_seconds=120.0, max_connections=16))
        seal = MessageSeal(server.message_secret)
        self.index, self.timelines = StoreSessionIndex(self.store, seal), StoreTimelines(self.store, seal)
        self.ledger, self.places = StoreBudgetLedger(self.store), SharedKeySessions(self.store)
        self.launches = SharedLaunches(self.store, LAUNCH_KEEP_SECONDS)
        self.fly = fly

    async def original(self, session_id: str) -> Original:
        """The session as a copy repeats it, once it landed (waited for); refused if it ended."""
        deadline = time.monotonic() + LANDED_WAIT_SECONDS
        while not await self._running(session_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"session {session_id} is not among the running sessions after "
                                   f"{LANDED_WAIT_SECONDS:g} s: it never landed, or ended; copy a live one")
            await asyncio.sleep(0.1)
        entry = await self.index.entry(session_id)
        events = await self.timelines.read(session_id)
        key = await self.ledger.owner(session_id)
        listed = await self.fly.get(f"/v1/apps/{FLY_APP}/machines", params={f"metadata.{META_SESSION}": session_id})
        listed.raise_for_status()
        machines = listed.json()
        if entry is None or not events or key is None or not machines:
            raise RuntimeError(f"session {session_id} has no index entry, timeline, budget owner or machine to copy")
        if not await self._running(session_id):
            raise RuntimeError(f"session {session_id} ended while it was read: copy a live one")
        until = await self.store.redis.zscore(key_of(self.store, str(entry["caller"])), session_id)
        seconds, micros = await self.store.redis.time()
        place = None if until is None else (until - (int(seconds) * 1_000_000 + int(micros))) / 1_000_000
        return Original(session_id, entry, events, key, machines[0]["config"], place)

    async def _running(self, session_id: str) -> bool:
        return await self.store.redis.zscore(self.launches.running.key, session_id) is not None

    async def copy(self, original: Original, ids: list[str], created: list[float]) -> None:
        """A copy of `original` for each id, created at the time beside it."""
        writes, places, bodies = [], [], []
        caller = str(original.entry["caller"])
        for session_id, at in zip(ids, created, strict=True):
            entry, events, config = original.copied(session_id)
            # In this order within the pipeline: the timeline's opening event before the others.
            writes += [self.index.opened(entry | {"created": at}),
                       self.ledger.open(original.budget_key, session_id, at),
                       self.launches.landed(secrets.token_hex(8), session_id),
                       *(self.timelines.append(session_id, event) for event in events)]
            if original.place_seconds is not None:
                places.append(self.places.hold(caller, session_id, UNBOUNDED_SHARE, original.place_seconds))
            bodies.append({"name": machine_name(session_id), "config": config})
        _, held, made = await asyncio.gather(asyncio.gather(*writes), asyncio.gather(*places),
                                             self.fly.post("/_fly/machines", json=bodies))
        if any(h is not None for h in held):
            raise RuntimeError("the key's share refused a copy's place")
        made.raise_for_status()

    async def aclose(self) -> None:
        await self.store.aclose()


async def copy_sessions(server: RedisServer, fakes_url: str, original: str, count: int, created: float,
                        batch: int = BATCH) -> list[str]:
    """The ids of `count` copies of session `original`, created a millisecond apart up to `created`
    (epoch seconds): before the real starts that follow them."""
    ids = [secrets.token_hex(12) for _ in range(count)]
    async with httpx.AsyncClient(base_url=fakes_url, timeout=120) as fly:
        copier = Copier(server, fly)
        try:
            session = await copier.original(original)
            for first in range(0, count, batch):
                size = min(batch, count - first)
                await copier.copy(session, ids[first:first + size],
                                  [created - (count - first - n) / 1000 for n in range(size)])
        finally:
            await copier.aclose()
    return ids
