"""The TURN relay's share of a session's cost (dispatcher/usage/relay_cost.py, relay_price.py): the
bot's transport report checked as its usage rows are (botchannel/transport_use.py), then priced at
the relay's cloud's egress price from the table, or `TURN_RELAY_USD_PER_GB`; a call not relayed is
$0 and says so, a relayed one without a price is "not priced", one never measured says why."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from botchannel.contract import Report, encode, parse_frame
from botchannel.transport_use import parse_transport
from botchannel.usage import UsageError
from dispatcher.reserve.prices import BotPrice
from dispatcher.sessions.budget_usage import LedgerUsage
from dispatcher.sessions.budgets import Budgets
from dispatcher.sessions.cost import NOT_COUNTED, PARTIAL_RELAY, RELAY_NOT_YET, SessionCosts
from dispatcher.sessions.start_reserve import LEAST_USD
from dispatcher.settings import SettingsError
from dispatcher.store.budget_ledger import MemoryBudgetLedger
from dispatcher.usage.price_table import load_prices
from dispatcher.usage.relay_cost import CUT, MAX_BYTES_PER_SECOND, NOT_MEASURED, PACKET_OVERHEAD_BYTES, UNPRICED
from dispatcher.usage.relay_price import relay_price, table_price
from dispatcher.usage.rollups import MemoryRollups, SessionUse
from dispatcher.usage.summary import summarise
from dispatcher.usage.usage_count import amounts

RELAYED = {"local_candidate": "relay", "remote_candidate": "prflx", "bytes_sent": 120_000,
           "bytes_received": 100_000, "packets_sent": 500, "packets_received": 450}
DIRECT = {**RELAYED, "local_candidate": "host", "remote_candidate": "srflx"}
DAY = date(2026, 11, 28)
PRICE = BotPrice(36.0, "1 vCPU", "a test price")  # $36 a month


def ended(transport: dict[str, Any] | None, seconds: float = 60.0) -> list[dict[str, Any]]:
    end: dict[str, Any] = {"event": "ended", "at": 1000.0 + seconds, "usage": []}
    if transport is not None:
        end["transport"] = transport
    return [{"event": "launched", "at": 1000.0}, end]


@pytest.mark.parametrize("transport, says", [
    ({**RELAYED, "bytes_sent": -1}, "bytes_sent must be a number from 0"),
    ({**RELAYED, "bytes_received": 1e13}, "bytes_received must be a number from 0"),
    ({**RELAYED, "packets_sent": float("nan")}, "packets_sent must be a number"),
    ({**RELAYED, "bytes_sent": float("inf")}, "bytes_sent must be a number"),
    ({**RELAYED, "bytes_sent": 10**400}, "bytes_sent must be a number"),  # a JSON integer no float holds
    ({**RELAYED, "bytes_sent": True}, "bytes_sent must be a number"),
    ({**RELAYED, "local_candidate": "turn"}, "local_candidate must be one of host, srflx, prflx, relay"),
    ({**RELAYED, "address": "10.0.0.1"}, "unknown field 'address'"),
    ([RELAYED], "transport must be an object"),
])
def test_a_malformed_transport_is_refused_naming_what_is_wrong(transport: object, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_transport(transport)


def test_an_ended_report_keeps_its_transport_and_one_malformed_leaves_the_end_without_it() -> None:
    frame = parse_frame(encode(Report("ended", "s1", 1.0, usage=(), transport=RELAYED)))
    assert isinstance(frame, Report) and frame.transport == RELAYED
    bad = json.dumps({"type": "report", "event": "ended", "session_id": "s1", "t": 1.0,
                      "transport": {**RELAYED, "bytes_sent": -5}})
    kept = parse_frame(bad)
    assert isinstance(kept, Report) and kept.event == "ended" and kept.transport is None


def test_the_table_prices_each_stack_clouds_egress_per_byte_and_another_provider_not_at_all() -> None:
    aws, gcp, azure = relay_price({}, "ecs"), relay_price({}, "cloudrun"), relay_price({}, "aci")
    assert aws is not None and aws.usd_per_gb == pytest.approx(0.09) and not aws.both_ways
    assert "aws.amazon.com" in aws.source and "seen 2026-" in aws.source
    assert gcp is not None and gcp.usd_per_byte == pytest.approx(0.12 / 2**30)  # GCP prices per GiB
    assert azure is not None and azure.usd_per_gb == pytest.approx(0.087)
    assert relay_price({}, "k8s") is None and relay_price({}, "local") is None
    hosted = relay_price({"TURN_RELAY_USD_PER_GB": "0.4"}, "k8s")
    assert hosted is not None and hosted.usd_per_gb == pytest.approx(0.4) and hosted.both_ways
    with pytest.raises(SettingsError, match="TURN_RELAY_USD_PER_GB"):
        relay_price({"TURN_RELAY_USD_PER_GB": "-1"}, "ecs")
    with pytest.raises(SettingsError, match="relay_egress for aws"):
        table_price({"relay_egress": {"prices": [{"cloud": "aws", "usd": -0.09, "per": "GB", "source": "x"}]}}, "aws")
    # The services' table still loads with the relay's section beside it.
    assert load_prices({}).price("tts", "tts-1") is not None


def test_a_relayed_call_on_the_clouds_relay_prices_what_it_sent_to_the_caller() -> None:
    costs = SessionCosts("ecs", PRICE, relay=relay_price({}, "ecs"))
    cost = costs.of(ended(RELAYED), running=False)
    assert cost is not None and cost.relay is not None and cost.relay.relayed
    wire = RELAYED["bytes_sent"] + PACKET_OVERHEAD_BYTES * RELAYED["packets_sent"]
    assert cost.relay_usd == pytest.approx(wire * 0.09 / 1e9)
    assert cost.total == pytest.approx(cost.machine_usd + wire * 0.09 / 1e9)  # type: ignore[operator]
    assert cost.metered_usd == pytest.approx(wire * 0.09 / 1e9)  # what a key's spend adds
    shown = cost.as_json()
    assert shown["relay"]["priced_bytes"] == wire and shown["relay"]["usd_per_gb"] == pytest.approx(0.09)
    assert not any(line.startswith("TURN relay") for line in cost.not_counted)
    assert "TURN relay and network egress" not in cost.not_counted and NOT_COUNTED[1].startswith("network egress")


def test_a_hosted_relay_prices_both_ways_and_an_unknown_price_is_not_priced_never_zero() -> None:
    hosted = SessionCosts("k8s", PRICE, relay=relay_price({"TURN_RELAY_USD_PER_GB": "0.5"}, "k8s"))
    cost = hosted.of(ended(RELAYED), running=False)
    both = (RELAYED["bytes_sent"] + RELAYED["bytes_received"]
            + PACKET_OVERHEAD_BYTES * (RELAYED["packets_sent"] + RELAYED["packets_received"]))
    assert cost is not None and cost.relay_usd == pytest.approx(both * 0.5 / 1e9)
    unpriced = SessionCosts("k8s", PRICE, relay=None).of(ended(RELAYED), running=False)
    assert unpriced is not None and unpriced.relay_usd is None and UNPRICED in unpriced.not_counted
    assert unpriced.total == pytest.approx(unpriced.machine_usd)  # left out, not counted as 0 dollars
    assert unpriced.as_json()["relay"]["priced"] == "not priced" and "relay_usd" not in unpriced.as_json()
    assert amounts(unpriced)[-1].measure == "relay_unpriced"


def test_a_direct_call_is_zero_and_says_so_and_an_unmeasured_one_says_why() -> None:
    costs = SessionCosts("ecs", PRICE, relay=relay_price({}, "ecs"))
    direct = costs.of(ended(DIRECT), running=False)
    assert direct is not None and direct.relay_usd == 0.0 and direct.as_json()["relay_usd"] == 0.0
    assert direct.as_json()["relay"]["why"].startswith("none: the call's media went direct")
    assert not any(line.startswith("TURN relay") for line in direct.not_counted)
    phone = costs.of(ended(None), running=False)
    assert phone is not None and phone.relay_usd is None and NOT_MEASURED in phone.not_counted
    assert "relay" not in phone.as_json() and "relay_usd" not in phone.as_json()
    live = costs.of(ended(None)[:1], running=True)
    assert live is not None and RELAY_NOT_YET in live.not_counted and NOT_MEASURED not in live.not_counted


def test_a_killed_bots_relay_is_its_last_report_marked_partial_and_a_stored_end_is_checked_again() -> None:
    costs = SessionCosts("ecs", PRICE, relay=relay_price({}, "ecs"))
    events = [{"event": "launched", "at": 1000.0}, {"event": "machine_ended", "at": 1030.0}]
    killed = costs.of(events, running=False, transport_so_far=RELAYED)
    assert killed is not None and killed.relay_usd is not None and killed.relay_usd > 0
    assert PARTIAL_RELAY in killed.not_counted
    tampered = costs.of(ended({**RELAYED, "bytes_sent": -1}), running=False)
    assert tampered is not None and tampered.relay_usd is None and NOT_MEASURED in tampered.not_counted


def test_a_count_past_what_the_session_could_carry_is_cut_there_and_said() -> None:
    costs = SessionCosts("ecs", PRICE, relay=relay_price({}, "ecs"))
    cost = costs.of(ended({**RELAYED, "bytes_sent": 1e12}, seconds=10.0), running=False)
    assert cost is not None and CUT in cost.not_counted
    assert cost.relay is not None and cost.relay.priced_bytes == pytest.approx(MAX_BYTES_PER_SECOND * (10 + 10))


async def test_the_rollups_and_the_usage_answer_add_the_relay_to_the_cost() -> None:
    costs = SessionCosts("ecs", PRICE, relay=relay_price({}, "ecs"))
    cost = costs.of(ended(RELAYED), running=False)
    assert cost is not None and cost.relay_usd is not None and cost.total is not None
    rollups = MemoryRollups(keep_days=30)
    assert await rollups.add(SessionUse("s-1", DAY, "k", "r1", amounts(cost)))
    totals = summarise(await rollups.grouped(DAY, DAY, "key", None), "key")["totals"]
    assert totals["relay_usd"] == pytest.approx(cost.relay_usd, abs=1e-6)
    assert totals["cost_usd"] == pytest.approx(cost.total, abs=1e-6) and totals["not_priced"] == 0
    unpriced = SessionCosts("k8s", PRICE).of(ended(RELAYED), running=False)
    assert unpriced is not None
    assert await rollups.add(SessionUse("s-2", DAY, "k", "r1", amounts(unpriced)))
    assert summarise(await rollups.grouped(DAY, DAY, "key", None), "key")["totals"]["not_priced"] == 1


async def test_a_keys_spend_adds_its_relayed_calls_relay_with_its_services() -> None:
    ledger, budgets = MemoryBudgetLedger(), Budgets()
    end = 1_795_000_000.0
    usage = LedgerUsage(ledger, budgets, dollars_per_second=None, clock=lambda: end)
    budgets.limit({"budget.acme.spend-month": 10})
    costs = SessionCosts("ecs", PRICE, relay=relay_price({"TURN_RELAY_USD_PER_GB": "1000"}, "ecs"))
    cost = costs.of(ended(RELAYED), running=False)  # no services used: the relay alone
    assert cost is not None and cost.relay_usd is not None and cost.relay_usd > 0.2
    await ledger.open("acme", "s-1", end - 60)
    await usage.services_spent("acme", "s-1", cost, end)
    await usage.refresh()
    # With its machine, and the start reserve it holds while the ledger has it open.
    assert usage.used("acme", "spend-month", end) == pytest.approx(cost.billed_usd + LEAST_USD)
