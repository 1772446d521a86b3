"""A start whose `?wait=started` timed out (504 `start_timeout`, "it may still start") on a real
redis-server: its `failed` note does not close the session in the key's budget ledger while its
machine may still start; its machine's own end does, with the minutes it ran."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.budgets import Budgets
from dispatcher.store.budget_ledger import StoreBudgetLedger
from dispatcher.store.client import Store
from tests.support.waiting import until

START = 1_795_000_000.0  # 2026-11-18 11:06 UTC: the session's minutes fall in one day and month


async def test_a_timed_out_start_stays_open_in_the_budget_until_its_machine_ends(store: Store) -> None:
    now = [START]
    ledger = StoreBudgetLedger(store)
    budgets = Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=0.01, clock=lambda: now[0])
    budgets.limit({"budget.acme.sessions": 1})
    await ledger.open("acme", "s-slow", now[0])
    now[0] += 60
    usage.timeline_event("s-slow", {"event": "failed", "code": "start_timeout", "status": 504})
    now[0] += 120  # its machine started after all, and ran two more minutes
    usage.timeline_event("s-slow", {"event": "machine_ended", "state": "ended"})

    async def is_closed() -> bool:
        return (await ledger.read(["acme"]))["acme"]["sessions"] == 0

    closed: Callable[[], bool | Awaitable[bool]] = is_closed
    await until(closed, "the session closed in the ledger")
    read = (await ledger.read(["acme"]))["acme"]
    assert read["minutes:day:2026-11-18"] == pytest.approx(3.0)  # to its machine's end, not to the 504
