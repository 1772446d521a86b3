"""A key's budget while its store is down, on a real redis-server stopped and started again: a start
admitted then (starts go on without the store) is counted against the key's sessions at once for as
long as it runs, and once the store answers again it reaches the ledger, with its minutes if it ended
meanwhile, rather than never being counted anywhere."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.budgets import Budgets
from dispatcher.store.budget_ledger import StoreBudgetLedger
from dispatcher.store.client import Store
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

START = 1_795_000_000.0  # 2026-11-18 11:06 UTC: the ended session's minutes fall in one day and month


@pytest.fixture
async def served(tmp_path: Path, prefix: str) -> AsyncIterator[tuple[RedisServer, Store]]:
    """A redis-server of this test's own (it is stopped or hung), and the dispatcher's store on it."""
    with redis_server(tmp_path) as server:
        store = Store(settings_for(server, "r-solo", prefix))
        yield server, store
        await store.aclose()


def budgeted(store: Store, now: list[float]) -> tuple[StoreBudgetLedger, Budgets, LedgerUsage]:
    """Key acme held to one session at once, its usage read from the store's ledger at `now[0]`."""
    ledger = StoreBudgetLedger(store)
    budgets = Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=0.01, clock=lambda: now[0])
    budgets.limit({"budget.acme.sessions": 1})
    return ledger, budgets, usage


async def test_a_start_while_the_store_is_down_counts_and_reaches_the_ledger_once_it_answers(
        served: tuple[RedisServer, Store]) -> None:
    now = [START]
    server, store = served
    ledger, budgets, usage = budgeted(store, now)
    server.stop()
    budgets.check("acme", now=now[0])
    usage.started("acme", "s-down")
    await until(lambda: not store.health.ok, "the open the store did not take")
    await asyncio.sleep(0.05)  # its failure handled
    over = budgets.over("acme", now[0])
    assert over is not None and over.used == 1  # it runs: the key is at its one session at once
    now[0] += 120
    usage.timeline_event("s-down", {"event": "ended"})  # it ends before the store is back
    server.start()  # same port
    now[0] += 600  # read ten minutes later: its two minutes are counted, not twelve
    await until(store.ping, "the store answering again")
    await usage.refresh()
    read = (await ledger.read(["acme"]))["acme"]
    assert read["sessions"] == 0
    assert read["minutes:day:2026-11-18"] == pytest.approx(2.0)
    assert read["dollars:month:2026-11"] == pytest.approx(1.2)
    assert budgets.over("acme", now[0]) is None


async def test_a_session_that_ends_while_the_store_is_down_is_closed_once_it_answers(
        served: tuple[RedisServer, Store]) -> None:
    # Its close was dropped: the session stayed open in the ledger for weeks, a place of the key's
    # sessions at once taken for good and its minutes never counted.
    now = [START]
    server, store = served
    ledger, budgets, usage = budgeted(store, now)
    await ledger.open("acme", "s-up", now[0])  # opened while the store answered
    await usage.refresh()
    assert budgets.over("acme", now[0]) is not None
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)  # hung, its data kept: it answers no call in time
    now[0] += 180
    usage.timeline_event("s-up", {"event": "ended"})
    await until(lambda: not store.health.ok, "the close the store did not take")
    await asyncio.sleep(0.05)  # its failure handled
    os.kill(server.process.pid, signal.SIGCONT)
    now[0] += 600
    await until(store.ping, "the store answering again")
    await usage.refresh()
    read = (await ledger.read(["acme"]))["acme"]
    assert read["sessions"] == 0
    assert read["minutes:day:2026-11-18"] == pytest.approx(3.0)
    assert budgets.over("acme", now[0]) is None
