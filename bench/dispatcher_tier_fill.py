"""More live sessions than real starts could make in the time: copies of one session a replica
started, each under a new id, written as a start writes them.

A copy is made with the dispatcher's own writes, never keys by hand: the session's index entry
(`StoreSessionIndex.opened`), its timeline's events (`StoreTimelines.append`), read back from
the store with the same modules and given the new id, and its open in its key's budget ledger
(`StoreBudgetLedger.open`, which a budgeted start's admission iterates over); and its machine, created at the providers'
fake through Fly's own create call with the original's configuration (the new session in its
name and metadata), so admission's recount and the status views list every session as a real
provider would. Not copied: the start's short-lived records (the bot's held values, which live
minutes; the start's lease; its launch record, dropped after the keep time): the store's bytes per
session are taken from real starts only.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx

from dispatcher.machines.fly.provider import META_SESSION, machine_name
from dispatcher.store.budget_ledger import StoreBudgetLedger
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.session_index import StoreSessionIndex
from dispatcher.store.timelines import StoreTimelines
from tests.support.redis_server import RedisServer

FLY_APP = "bench"  # bench.dispatch_burst's FLY_APP


def renamed(value: Any, old: str, new: str) -> Any:
    """`value` with every occurrence of the session id `old` (in keys and strings) made `new`."""
    return json.loads(json.dumps(value).replace(old, new))


async def copy_sessions(server: RedisServer, fakes_url: str, original: str, count: int, created: float,
                        concurrency: int = 64) -> None:
    """`count` copies of session `original`, created `created` (epoch seconds) on."""
    store = Store(StoreSettings(url=server.url, password=server.password, replica_id="bench-fill",
                                message_secret=server.message_secret,
                                # Generous: on a loaded machine the store's core is shared with the fakes.
                                timeout_seconds=60.0))
    seal = MessageSeal(server.message_secret)
    index, timelines, ledger = StoreSessionIndex(store, seal), StoreTimelines(store, seal), StoreBudgetLedger(store)
    try:
        entry = await index.entry(original)
        events = await timelines.read(original)
        key = await ledger.owner(original)
        async with httpx.AsyncClient(base_url=f"{fakes_url}/v1/apps/{FLY_APP}", timeout=30,
                                     limits=httpx.Limits(max_connections=concurrency)) as fly:
            listed = await fly.get("/machines", params={f"metadata.{META_SESSION}": original})
            listed.raise_for_status()
            machine = listed.json()[0]
            if entry is None or not events or key is None:
                raise RuntimeError(f"session {original} has no index entry, timeline or budget owner to copy")
            todo = iter(range(count))

            async def worker() -> None:
                for n in todo:
                    session_id = secrets.token_hex(12)
                    at = created + n / 1000
                    config = renamed(machine["config"], original, session_id)
                    body = {"name": machine_name(session_id), "config": config}
                    # Queued in one turn of the loop: the store's writes go in one round trip, in this order.
                    writes = [index.opened(renamed(entry, original, session_id) | {"created": at}),
                              ledger.open(key, session_id, at),
                              *(timelines.append(session_id, renamed(event, original, session_id)) for event in events)]
                    _, made = await asyncio.gather(asyncio.gather(*writes), fly.post("/machines", json=body))
                    made.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await store.aclose()
