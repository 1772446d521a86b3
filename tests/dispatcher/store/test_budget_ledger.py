"""The budget ledger on a real redis-server, as the dispatcher's own store user (its ACL grants only
the commands the dispatcher sends): a session opened at one replica and closed at another is counted
once, its minutes and spend added to each period; the one-time record of a webhook says first once;
the in-memory ledger of one process answers the same."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.store.budget_ledger import BudgetLedger, MemoryBudgetLedger, StoreBudgetLedger
from dispatcher.store.client import Store

FIELDS = {"minutes:day:2026-11-27": "minutes", "minutes:month:2026-11": "minutes", "dollars:month:2026-11": "dollars"}


async def counted_once(here: BudgetLedger, there: BudgetLedger) -> None:
    await here.open("acme", "s-1", 1000.0)
    await here.open("acme", "s-2", 1000.0)
    assert (await there.read(["acme", "other"]))["acme"]["sessions"] == 2
    assert await there.owner("s-1") == "acme"
    closes = await asyncio.gather(there.close("acme", "s-1", 1090.0, 0.01, FIELDS),
                                  here.close("acme", "s-1", 1090.0, 0.01, FIELDS))
    assert sorted(closes, key=lambda c: c is None) == [90.0, None]  # one close counts, whoever's first
    assert await here.owner("s-1") is None
    read = (await here.read(["acme", "other"]))
    assert read["acme"] == pytest.approx({"sessions": 1.0, "minutes:day:2026-11-27": 1.5,
                                          "minutes:month:2026-11": 1.5, "dollars:month:2026-11": 0.9})
    assert read["other"] == {"sessions": 0.0}
    assert await here.first("acme:sessions:80", 60) is True
    assert await there.first("acme:sessions:80", 60) is False


async def test_the_store_counts_a_session_once_wherever_it_opens_and_closes(store: Store) -> None:
    await counted_once(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_counts_the_same_in_memory() -> None:
    one = MemoryBudgetLedger()
    await counted_once(one, one)
