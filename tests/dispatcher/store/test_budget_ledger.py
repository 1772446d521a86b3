"""The budget ledger on a real redis-server, as the dispatcher's own store user (its ACL grants only
the commands the dispatcher sends): a session opened at one replica and closed at another is counted
once, its minutes and spend added to each period; the one-time record of a webhook says first once;
the in-memory ledger of one process answers the same."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage, fields_of
from dispatcher.sessions.budgets import Budgets
from dispatcher.store.budget_in_flight import InFlight
from dispatcher.store.budget_ledger import Budget, BudgetLedger, MemoryBudgetLedger, StoreBudgetLedger
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
    assert read["acme"] == pytest.approx({"sessions": 1.0, "open_since": 1000.0, "in_flight": 0.0,
                                          "minutes:day:2026-11-27": 1.5,
                                          "minutes:month:2026-11": 1.5, "dollars:month:2026-11": 0.9})
    assert read["other"] == {"sessions": 0.0, "open_since": 0.0, "in_flight": 0.0}
    assert await here.first("acme:sessions:80", 60) is True
    assert await there.first("acme:sessions:80", 60) is False


async def test_the_store_counts_a_session_once_wherever_it_opens_and_closes(store: Store) -> None:
    await counted_once(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_counts_the_same_in_memory() -> None:
    one = MemoryBudgetLedger()
    await counted_once(one, one)


async def test_sessions_still_running_count_what_they_ran_so_far_against_minutes_and_spend(store: Store) -> None:
    # Counted only at their end, two sessions at once ran a key with 60 minutes a day to an hour
    # each (and on, unbounded) before the first of them ended; now the third start is refused.
    now = [1_795_000_000.0]
    ledger = StoreBudgetLedger(store)
    budgets = Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=0.01, clock=lambda: now[0], start_reserve=0.6)
    budgets.limit({"budget.acme.minutes-day": 60, "budget.acme.spend-month": 100})
    await ledger.open("acme", "s-1", now[0])
    await ledger.open("acme", "s-2", now[0] + 60)
    now[0] += 60 + 29 * 60  # s-1 ran 30 minutes, s-2 29
    await usage.refresh()
    assert usage.used("acme", "minutes-day", now[0]) == pytest.approx(59.0)
    assert budgets.over("acme", now[0]) is None
    now[0] += 30
    over = budgets.over("acme", now[0])
    assert over is not None and over.kind == "minutes-day" and over.used == pytest.approx(60.0)
    # 3600 s at $0.01, and each session's reserve (the start reserve: the key has no month yet)
    assert usage.used("acme", "spend-month", now[0]) == pytest.approx(36.0 + 2 * 0.6)
    await ledger.close("acme", "s-1", now[0], 0.01, fields_of(now[0]))
    await usage.refresh()
    assert usage.used("acme", "minutes-day", now[0]) == pytest.approx(60.0)  # counted once, ended or not


async def ended_before_opened(here: BudgetLedger, there: BudgetLedger) -> None:
    # The opening replica's store call held back (an outage) while its session's end is seen
    # elsewhere: the late open opened it for good, a place of the key's budget and a growing share
    # of its minutes gone for 40 days.
    assert await there.owner("s-9") is None
    assert await there.ended("s-9", 1120.0, 0.01, FIELDS) is None
    await here.open("acme", "s-9", 1000.0)  # the late open: counted at once, never open
    read = await there.read(["acme"])
    assert read["acme"] == pytest.approx({"sessions": 0.0, "open_since": 0.0, "in_flight": 0.0,
                                          "minutes:day:2026-11-27": 2.0,
                                          "minutes:month:2026-11": 2.0, "dollars:month:2026-11": 1.2})
    await here.open("acme", "s-9", 1000.0)  # a retry of an open whose answer never came
    assert (await there.read(["acme"]))["acme"]["minutes:day:2026-11-27"] == pytest.approx(2.0)
    # …and an end that finds the open taken since is told whose it is, to close it.
    await here.open("acme", "s-10", 1000.0)
    assert await there.ended("s-10", 1060.0, 0.01, FIELDS) == "acme"


async def test_an_end_seen_before_its_open_is_counted_once_and_leaves_nothing_open(store: Store) -> None:
    await ended_before_opened(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_counts_an_end_before_its_open_the_same() -> None:
    one = MemoryBudgetLedger()
    await ended_before_opened(one, one)


async def test_an_open_retried_after_its_close_opens_nothing(store: Store) -> None:
    ledger = StoreBudgetLedger(store)
    await ledger.open("acme", "s-11", 1000.0)
    assert await ledger.close("acme", "s-11", 1060.0, 0.01, FIELDS) == 60.0
    await ledger.open("acme", "s-11", 1000.0)  # its first try's answer lost, the open is sent again
    assert (await ledger.read(["acme"]))["acme"]["sessions"] == 0


async def test_a_session_ended_at_one_replica_before_the_other_took_its_open_is_not_counted_for_good(
        store: Store) -> None:
    now = [1_795_000_000.0]
    budgets = Budgets()
    budgets.limit({"budget.acme.sessions": 1})
    starting = LedgerUsage(StoreBudgetLedger(store), budgets, dollars_per_second=0.01, clock=lambda: now[0])
    ending = LedgerUsage(StoreBudgetLedger(store), Budgets(), dollars_per_second=0.01, clock=lambda: now[0])
    now[0] += 30
    ending.timeline_event("s-12", {"event": "failed"})  # its bot crashed; seen at the other replica first
    await asyncio.sleep(0.2)
    now[0] -= 30
    starting.started("acme", "s-12")  # then the start's open, timed at its start, is taken
    await asyncio.sleep(0.2)
    now[0] += 30
    await starting.refresh()
    assert budgets.over("acme", now[0]) is None  # the key's one session at once is free again
    assert starting.used("acme", "minutes-day", now[0]) == pytest.approx(0.5)


SPEND = "dollars:month:2026-11"
FLIGHT = InFlight(0.01, 0.6, SPEND, "sessions:month:2026-11")  # a start reserve of a minute of machine


async def admitted_at_once(here: BudgetLedger, there: BudgetLedger) -> None:
    # Six starts checked at once at two replicas against 2 sessions at once: each check and its open
    # are one step, so exactly two are taken; a refusal names the budget and what was used.
    budgets: list[Budget] = [("sessions", "sessions", "sessions", 2.0)]
    answers = await asyncio.gather(*(ledger.admit("acme", f"s-{n}", 1000.0, budgets, FLIGHT)
                                     for n, ledger in enumerate([here, there] * 3)))
    assert sum(answer is None for answer in answers) == 2
    assert {(a.kind, a.used) for a in answers if a is not None} == {("sessions", 2.0)}
    taken = [f"s-{n}" for n, answer in enumerate(answers) if answer is None]
    await there.cancel("acme", taken[0])  # refused further on (the cap): given back, nothing counted
    assert (await here.read(["acme"]))["acme"]["sessions"] == 1
    assert await here.admit("acme", "s-9", 1000.0, budgets, FLIGHT) is None


async def test_the_store_takes_a_budgeted_start_and_checks_it_in_one_step(store: Store) -> None:
    await admitted_at_once(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_takes_them_the_same() -> None:
    one = MemoryBudgetLedger()
    await admitted_at_once(one, one)


async def billed_in_place_of_the_machine(here: BudgetLedger, there: BudgetLedger) -> None:
    # A session's spend is its bill, however its close (machine, 60 s at $0.01) and its billed
    # figure ($0.90: its machine with a warm bot's idle share, its services) come.
    fields = {**FIELDS, "sessions:month:2026-11": "sessions"}
    await here.open("acme", "s-1", 1000.0)
    await there.close("acme", "s-1", 1060.0, 0.01, fields)
    assert (await here.read(["acme"]))["acme"][SPEND] == pytest.approx(0.6)
    assert await here.spent("acme", "s-1", 0.9, [SPEND], estimated=0.2)
    assert not await there.spent("acme", "s-1", 0.9, [SPEND])
    await here.open("acme", "s-2", 1000.0)
    assert await there.spent("acme", "s-2", 0.5, [SPEND])  # priced before its close was seen
    await here.close("acme", "s-2", 1060.0, 0.01, fields)
    read = (await there.read(["acme"], 1060.0, FLIGHT))["acme"]
    assert read[SPEND] == pytest.approx(1.4) and read["estimated:" + SPEND] == pytest.approx(0.2)
    assert read["sessions:month:2026-11"] == 2
    # A start's reserve: the month's average billed session, $0.70 (above a minute of machine, $0.60).
    await here.open("acme", "s-3", 1060.0)
    assert (await there.read(["acme"], 1070.0, FLIGHT))["acme"]["in_flight"] == pytest.approx(0.1 + 0.7)
    assert await here.admit("acme", "s-4", 1070.0, [("spend-month", SPEND, "dollars", 2.3)], FLIGHT) is None
    refused = await here.admit("acme", "s-5", 1070.0, [("spend-month", SPEND, "dollars", 2.3)], FLIGHT)
    assert refused is not None and refused.used == pytest.approx(1.4 + 0.1 + 2 * 0.7)
    assert refused.kind == "spend-month" and refused.estimated == pytest.approx(0.2)
    assert refused.reserved == pytest.approx(2 * 0.7)  # of `used`, held for s-3 and s-4 still running


async def test_the_store_counts_a_sessions_bill_in_place_of_its_machine(store: Store) -> None:
    await billed_in_place_of_the_machine(StoreBudgetLedger(store), StoreBudgetLedger(store))


async def test_one_process_counts_its_bill_the_same() -> None:
    one = MemoryBudgetLedger()
    await billed_in_place_of_the_machine(one, one)


async def test_a_reserve_is_the_average_of_the_sessions_it_counts_not_of_the_months_spend() -> None:
    # Spend counted before the month's sessions were (an earlier release's) does not swell the
    # average: one $0.60 session counted, beside $200 of the month's spend, reserves $0.60, not $200.60.
    ledger, budgets, now = MemoryBudgetLedger(), Budgets(), 1_795_000_000.0
    usage = LedgerUsage(ledger, budgets, dollars_per_second=0.01, clock=lambda: now)
    budgets.limit({"budget.acme.spend-month": 1000})
    await ledger.spent("acme", "before", 200.0, ["dollars:month:2026-11"])
    await ledger.open("acme", "s-1", now - 60)
    await ledger.close("acme", "s-1", now, 0.01, fields_of(now))
    await ledger.open("acme", "s-2", now)
    await usage.refresh()
    assert usage.used("acme", "spend-month", now) == pytest.approx(200.0 + 0.6 + 0.6)  # s-2's reserve: $0.60
