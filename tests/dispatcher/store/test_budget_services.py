"""A session's services count in its key's spend budget, once, whichever replicas add them: on a real
redis-server as the dispatcher's own store user, two replicas' ledgers adding the same session at
once count it once; a killed bot's services, as it last reported them, are kept apart as estimated
and the refusal says how much of the spend that is; one process's memory answers the same."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.budgets import Budgets
from dispatcher.sessions.cost import SessionCost, SessionCosts
from dispatcher.store.budget_ledger import BudgetLedger, MemoryBudgetLedger, StoreBudgetLedger
from dispatcher.store.client import Store
from dispatcher.usage.price_table import load_prices
from dispatcher.usage.rollups import MARKER_SECONDS
from tests.support.redis_server import RedisServer

NOW = 1_795_000_000.0  # 2026-11-18, UTC
# gpt-4o-mini at the built-in table's $0.15 and $0.60 a million tokens: $0.75
MINI = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini",
        "prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
EVENTS = [{"event": "launched", "at": NOW - 60}, {"event": "machine_ended", "at": NOW}]


def killed(rows: list[dict[str, object]]) -> SessionCost:
    """A bot killed before its end, its services as it last reported them (SessionCosts' own reckoning)."""
    cost = SessionCosts("local", None, prices=load_prices({})).of(EVENTS, running=False, so_far=rows)
    assert cost is not None and cost.services is not None and cost.services.reported
    return cost


async def spent_once(here: BudgetLedger, there: BudgetLedger) -> None:
    budgets, other = Budgets(), Budgets()
    usage = LedgerUsage(here, budgets, dollars_per_second=None, clock=lambda: NOW)
    beside = LedgerUsage(there, other, dollars_per_second=None, clock=lambda: NOW)
    budgets.limit({"budget.acme.spend-month": 1})
    cost = killed([MINI])
    await asyncio.gather(usage.services_spent("acme", "s-1", cost, NOW),
                         beside.services_spent("acme", "s-1", cost, NOW))  # one end seen at two replicas
    await usage.refresh()
    assert usage.used("acme", "spend-month", NOW) == pytest.approx(0.75)
    assert usage.estimated("acme", "spend-month", NOW) == pytest.approx(0.75)
    assert budgets.over("acme", NOW) is None
    await beside.services_spent("acme", "s-2", cost, NOW)
    await usage.refresh()
    over = budgets.over("acme", NOW)
    assert over is not None and over.used == pytest.approx(1.5)
    refusal = over.refusal()
    assert refusal.extra["estimated"] == pytest.approx(1.5)
    assert "1.5 of it estimated: the services of sessions whose bot ended without its report" in refusal.message


async def test_two_replicas_add_a_killed_bots_services_to_its_keys_spend_once_marked_estimated(store: Store) -> None:
    await spent_once(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_adds_them_the_same_in_memory() -> None:
    one = MemoryBudgetLedger()
    await spent_once(one, one)


async def test_a_bots_own_end_report_counts_in_full_and_nothing_priced_adds_nothing(store: Store) -> None:
    ledger, budgets = StoreBudgetLedger(store), Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=None, clock=lambda: NOW)
    budgets.limit({"budget.acme.spend-month": 100})
    costs = SessionCosts("local", None, prices=load_prices({}))
    reported = costs.of([*EVENTS, {"event": "ended", "at": NOW, "usage": [MINI]}], running=False)
    unpriced = killed([{"kind": "stt", "processor": "X#0", "model": "no-such-model", "audio_seconds": 60.0}])
    assert reported is not None
    await usage.services_spent("acme", "s-1", reported, NOW)
    await usage.services_spent("acme", "s-2", unpriced, NOW)  # not priced: never counted as $0 spent
    await usage.refresh()
    assert usage.used("acme", "spend-month", NOW) == pytest.approx(0.75)
    assert usage.estimated("acme", "spend-month", NOW) == 0.0


async def test_a_sessions_spent_mark_outlives_the_usage_rollups_mark(store: Store, redis: RedisServer) -> None:
    """An end seen again on day two (the rollups still know it) must not add its services twice."""
    ledger = StoreBudgetLedger(store)
    assert await ledger.spent("acme", "s-1", 0.75, ["dollars:month:2026-11"])
    with redis.admin() as admin:  # the store's own user may not read a TTL
        ttl = admin.pttl(store.key("budget", "spent", "s-1"))
    assert ttl >= MARKER_SECONDS * 1000 - 60_000
