"""A start's budget check reads the ledger's field of each budget's period as of the moment it checks:
the fields are worked out once a UTC day, not at each start, so a check just after midnight (and
just after the first of a month) must already read the new period's, never the day before's."""

from __future__ import annotations

import datetime

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage, fields_of
from dispatcher.sessions.budgets import Budgets
from dispatcher.store.budget_ledger import MemoryBudgetLedger


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


async def test_a_check_reads_the_new_day_and_month_from_their_first_second() -> None:
    now = [at("2026-11-30T23:00:00")]
    ledger = MemoryBudgetLedger()
    budgets = Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=0.01, clock=lambda: now[0])
    budgets.limit({"budget.acme.minutes-day": 60, "budget.acme.minutes-month": 1000, "budget.acme.spend-month": 10})
    await ledger.open("acme", "s-1", now[0])
    ended = at("2026-11-30T23:30:00")
    await ledger.close("acme", "s-1", ended, 0.01, fields_of(ended))
    await usage.refresh()
    last_second = at("2026-11-30T23:59:59")
    assert usage.used("acme", "minutes-day", last_second) == pytest.approx(30.0)
    assert usage.used("acme", "minutes-month", last_second) == pytest.approx(30.0)
    assert usage.used("acme", "spend-month", last_second) == pytest.approx(18.0)
    assert budgets.over("acme", last_second) is not None  # $18 of $10 this month
    december = at("2026-12-01T00:00:00")
    assert usage.used("acme", "minutes-day", december) == 0.0
    assert usage.used("acme", "minutes-month", december) == 0.0
    assert usage.used("acme", "spend-month", december) == 0.0
    assert budgets.over("acme", december) is None


async def test_the_day_turns_within_a_month_and_the_month_keeps_counting() -> None:
    now = [at("2026-11-27T23:40:00")]
    ledger = MemoryBudgetLedger()
    budgets = Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=None, clock=lambda: now[0])
    budgets.limit({"budget.acme.minutes-day": 10})
    await ledger.open("acme", "s-1", now[0])
    ended = at("2026-11-27T23:52:00")
    await ledger.close("acme", "s-1", ended, 0.0, fields_of(ended))
    await usage.refresh()
    over = budgets.over("acme", at("2026-11-27T23:59:59.5"))
    assert over is not None and over.used == pytest.approx(12.0)
    assert budgets.over("acme", at("2026-11-28T00:00:00")) is None
    assert usage.used("acme", "minutes-month", at("2026-11-28T00:00:00")) == pytest.approx(12.0)
    assert budgets.over("acme", at("2026-11-27T23:59:59")) is not None  # a check from before midnight, late
