"""A bot's reported service counts are bounded by its session's length (dispatcher/usage/service_bounds.py):
a hostile or broken bot cannot run up its key's monthly spend at will, and what is cut is counted at
the bound and said; a real call's counts are never cut."""

from __future__ import annotations

import pytest

from dispatcher.reserve.prices import BotPrice
from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.budgets import Budgets
from dispatcher.sessions.cost import SessionCosts
from dispatcher.store.budget_ledger import MemoryBudgetLedger
from dispatcher.usage.price_table import load_prices
from dispatcher.usage.relay_price import relay_price
from dispatcher.usage.service_bounds import INPUT_TOKENS_PER_SECOND, OUTPUT_TOKENS_PER_SECOND, SLACK_SECONDS
from dispatcher.usage.service_cost import price_usage

PRICE = BotPrice(36.0, "1 vCPU", "a test price")
END = 1_795_000_000.0
HUGE = {"kind": "llm", "processor": "OpenAILLMService#0", "model": "gpt-4o-mini",
        "prompt_tokens": 1e12, "completion_tokens": 1e12}


def costs() -> SessionCosts:
    return SessionCosts("ecs", PRICE, prices=load_prices({}), relay=relay_price({}, "ecs"))


async def test_one_bots_services_report_cannot_exhaust_its_keys_month() -> None:
    """A 5-second session reporting 10^12 tokens each way: counted at the bound, its key's month not spent."""
    ledger, budgets = MemoryBudgetLedger(), Budgets()
    usage = LedgerUsage(ledger, budgets, dollars_per_second=None, clock=lambda: END)
    budgets.limit({"budget.acme.spend-month": 1000})
    events = [{"event": "launched", "at": END - 5}, {"event": "ended", "at": END, "usage": [HUGE]}]
    cost = costs().of(events, running=False)
    assert cost is not None and cost.services is not None
    span = 5 + SLACK_SECONDS
    assert cost.services.usd == pytest.approx((INPUT_TOKENS_PER_SECOND * span * 0.15
                                               + OUTPUT_TOKENS_PER_SECOND * span * 0.60) / 1e6)
    assert cost.services.usd < 20  # not $750,000
    [row] = cost.services.as_json()["usage"]
    assert row["prompt_tokens"] == INPUT_TOKENS_PER_SECOND * span and row["cut"]["prompt_tokens"] == 1e12
    assert any("prompt_tokens" in line and "cut there" in line for line in cost.not_counted), cost.not_counted
    await ledger.open("acme", "s-1", END - 5)
    await usage.services_spent("acme", "s-1", cost, END)
    await usage.refresh()
    assert usage.used("acme", "spend-month", END) < 1000


def test_each_kind_is_bounded_by_the_sessions_length_and_a_real_call_is_not_cut() -> None:
    table = load_prices({})
    real = [{"kind": "llm", "processor": "l", "model": "gpt-4o-mini", "prompt_tokens": 400_000,
             "completion_tokens": 6_000, "cache_read_input_tokens": 300_000},
            {"kind": "tts", "processor": "t", "model": "tts-1", "characters": 9_000},
            {"kind": "stt", "processor": "s", "model": "nova-3", "audio_seconds": 600.0}]
    ten_minutes = price_usage(table, real, 600.0)
    assert ten_minutes.cut == [] and all("cut" not in row for row in ten_minutes.as_json()["usage"])
    hostile = [{"kind": "tts", "processor": "t", "model": "tts-1", "characters": 1e9},
               {"kind": "stt", "processor": "s", "model": "nova-3", "audio_seconds": 1e6}]
    short = price_usage(table, hostile, 10.0)
    tts, stt = short.as_json()["usage"]
    assert tts["characters"] == 1_000 * (10 + SLACK_SECONDS) and tts["cut"] == {"characters": 1e9}
    assert stt["audio_seconds"] == 10 + SLACK_SECONDS and stt["cut"] == {"audio_seconds": 1e6}
    assert len(short.cut) == 2 and short.cut[0].startswith("tts tts-1: the bot's characters past")


def test_a_sessions_rows_of_one_kind_share_its_bound_so_splitting_them_gets_no_more() -> None:
    """16 rows of 10^12 tokens each way in a 5.7-second session cost what one such row costs: the
    bound is the session's, summed over its rows of a kind, not each row's."""
    table = load_prices({})
    one = price_usage(table, [HUGE], 5.7)
    sixteen = price_usage(table, [{**HUGE, "processor": f"OpenAILLMService#{n}"} for n in range(16)], 5.7)
    assert sixteen.usd == pytest.approx(one.usd) and one.usd < 11  # not $164
    span = 5.7 + SLACK_SECONDS
    rows = sixteen.as_json()["usage"]
    assert sum(row["prompt_tokens"] for row in rows) == pytest.approx(INPUT_TOKENS_PER_SECOND * span)
    assert rows[0]["prompt_tokens"] == INPUT_TOKENS_PER_SECOND * span and rows[1]["prompt_tokens"] == 0
    assert all(row["cut"]["prompt_tokens"] == 1e12 for row in rows) and len(sixteen.cut) == 16
    # Rows within the bound together are counted as reported; the one that passes it is cut there.
    three = price_usage(table, [{"kind": "stt", "processor": "s", "model": "nova-3", "audio_seconds": 30.0}] * 3,
                        10.0)
    assert [row["audio_seconds"] for row in three.as_json()["usage"]] == [30.0, 30.0, 10.0]
    assert [bool(row.get("cut")) for row in three.as_json()["usage"]] == [False, False, True]
