"""A running session's reserve against its key's spend budget (dispatcher/sessions/start_reserve.py) is
what a session can be billed at most as it starts, priced as the bill prices it, never 0; a key's own
short sessions do not lower it, and the setting replaces it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.sessions.budget_usage import LedgerUsage, fields_of
from dispatcher.sessions.budgets import Budgets, Over
from dispatcher.sessions.start_reserve import LEAST_USD, SETTING, default_start_reserve, start_reserve
from dispatcher.settings import SettingsError
from dispatcher.store.budget_ledger import MemoryBudgetLedger
from dispatcher.usage.price_table import load_prices
from dispatcher.usage.service_cost import price_usage

FARGATE = 36.04 / (730 * 3600)  # a real machine's price a second: Fargate's 1 vCPU and 2 GB
NOW = 1_795_000_000.0
MOST = 1e12  # a report past every bound: counted at the bound


def billed_at_most(rows: list[dict[str, Any]], prices: str = "") -> float:
    """The services a session of 0 seconds is billed for `rows`, priced by the bill's own code."""
    table = load_prices({"USAGE_PRICES": prices} if prices else {})
    return price_usage(table, rows, 0.0).usd


def test_the_default_is_what_a_session_ending_at_once_can_be_billed_for_its_services_and_a_minute_of_machine() -> None:
    table = load_prices({})
    rows = [{"kind": "llm", "processor": "llm", "model": "gpt-4o-mini", "prompt_tokens": MOST,
             "completion_tokens": MOST}, {"kind": "tts", "processor": "tts", "model": "tts-1-hd", "characters": MOST}]
    assert default_start_reserve(table, None) == pytest.approx(billed_at_most(rows))
    assert billed_at_most(rows) == pytest.approx(11.16)  # the figure docs/operations.md gives
    assert default_start_reserve(table, FARGATE) == pytest.approx(11.16 + 60 * FARGATE)


def test_a_dearer_model_and_counts_priced_apart_raise_it_as_they_raise_the_bill() -> None:
    # A model whose cache reads and writes are counts of their own (not within its prompt tokens):
    # a session can be billed for each of them at its bound, and the reserve holds them all.
    dearer = json.dumps({"prices": [{"kind": "llm", "model": "big", "source": "a contract", "rates": {
        "prompt_tokens": 3.0, "cache_read_input_tokens": 0.3, "cache_creation_input_tokens": 3.75,
        "completion_tokens": 15.0}}]})
    rows = [{"kind": "llm", "processor": "llm", "model": "big", "prompt_tokens": MOST, "completion_tokens": MOST,
             "cache_read_input_tokens": MOST, "cache_creation_input_tokens": MOST},
            {"kind": "tts", "processor": "tts", "model": "tts-1-hd", "characters": MOST}]
    assert default_start_reserve(load_prices({"USAGE_PRICES": dearer}), None) == pytest.approx(
        billed_at_most(rows, dearer))
    assert billed_at_most(rows, dearer) > 11.16 * 10


def test_nothing_priced_still_holds_a_cent_a_session_never_zero() -> None:
    assert default_start_reserve(None, None) == LEAST_USD > 0
    assert start_reserve({}, None, None) == LEAST_USD


def test_the_setting_replaces_the_default_within_its_bounds() -> None:
    assert start_reserve({SETTING: "0.25"}, load_prices({}), FARGATE) == 0.25
    for wrong in ("0", "-1", "a dollar", "nan"):
        with pytest.raises(SettingsError, match=SETTING):
            start_reserve({SETTING: wrong}, load_prices({}), FARGATE)


async def test_a_keys_own_short_sessions_do_not_lower_it_so_a_burst_still_fits_the_room() -> None:
    # Twenty start-then-stop sessions of a second each pull the key's average call to a hundredth of
    # a cent; at a real machine's price each running start still holds the reserve: one start fits
    # $0.006 of room, the next seven are refused.
    ledger, budgets = MemoryBudgetLedger(), Budgets()
    usage = LedgerUsage(ledger, budgets, FARGATE, clock=lambda: NOW,
                        start_reserve=start_reserve({}, load_prices({}), FARGATE))
    budgets.limit({"budget.acme.spend-month": 0.006})
    for n in range(20):
        await ledger.open("acme", f"short-{n}", NOW - 100 + n)
        await ledger.close("acme", f"short-{n}", NOW - 99 + n, FARGATE, fields_of(NOW))
    await usage.refresh()
    answers = [await usage.admit("acme", f"s-{n}", budgets.of("acme"), NOW) for n in range(8)]
    assert answers[0] is True and all(isinstance(answer, Over) for answer in answers[1:]), answers
    refused = answers[1]
    assert isinstance(refused, Over) and refused.used == pytest.approx(20 * FARGATE + 11.16 + 60 * FARGATE)
    # Nothing of it is spent yet: the refusal says how much is held for the start still running.
    assert refused.reserved == pytest.approx(11.16 + 60 * FARGATE)
    error = refused.refusal()
    assert error.extra["reserved"] == refused.reserved and "held for its sessions still running" in error.message


ROOM = 0.006  # a key's spend left, as tests/replicas/test_budget_bursts.py leaves it


@pytest.mark.parametrize(("machine", "env", "admitted"), [
    (FARGATE, {}, 1),  # by default: what a session can be billed at most as it starts
    (None, {}, 1),  # no machine price (local bots, an unpriced GCE type or GPU): the services' bound still
    (None, {SETTING: "0.002"}, 3),  # the setting a third of the room: three starts fit, not eight
], ids=["fargate-price", "no-price", "reserve-set"])
async def test_a_burst_at_a_real_machine_price_or_none_admits_only_the_starts_the_room_holds_reserves_for(
        machine: float | None, env: dict[str, str], admitted: int) -> None:
    # A minute of a real machine is a fraction of a cent (nothing without a price): a reserve of it
    # let all 8 starts at once into $0.006 of room. The reserve as the dispatcher makes it
    # (dispatcher/wiring.py), on the ledger two replicas share (the replicas' burst proves the wiring).
    ledger, budgets = MemoryBudgetLedger(), Budgets()
    usage = LedgerUsage(ledger, budgets, machine, clock=lambda: NOW,
                        start_reserve=start_reserve(env, load_prices({}), machine))
    budgets.limit({"budget.acme.spend-month": ROOM})
    answers = [await usage.admit("acme", f"s-{n}", budgets.of("acme"), NOW) for n in range(8)]
    assert [answer is True for answer in answers] == [True] * admitted + [False] * (8 - admitted), answers
    refused = answers[admitted]
    assert isinstance(refused, Over) and refused.used >= ROOM and refused.reserved >= ROOM, refused
    assert "held for its sessions still running" in refused.refusal().message
