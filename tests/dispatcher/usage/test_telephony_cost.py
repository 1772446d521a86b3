"""A SIP call's minutes at its trunk's price (dispatcher/usage/telephony_cost.py): from its answer to
its end on the dispatcher's own events, billed in the trunk's increment rounded up, nothing for a
call never answered, a call still up priced until now; and the session's cost, its usage rows and
`GET /usage`'s sums carrying the line beside the machine."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.api.schemas import CostOut
from dispatcher.reserve.prices import BotPrice
from dispatcher.sessions.cost import SessionCosts
from dispatcher.usage.summary import summarise
from dispatcher.usage.telephony_cost import LegCost, price_telephony
from dispatcher.usage.trunk_line import TrunkLine, line_of
from dispatcher.usage.usage_count import amounts
from sipedge.config import TrunkPrice

T0 = 1_800_000_000.0
PRICE = BotPrice(730.0, "1 vCPU, 2 GB", "test")  # $1 an hour


def line(direction: str = "inbound", usd: float = 0.6, increment: int = 60) -> dict[str, Any]:
    return {"event": "telephony", "at": T0, "trunk": "twilio", "direction": direction, "usd_per_minute": usd,
            "increment_seconds": increment}


def at(event: str, seconds: float, **fields: Any) -> dict[str, Any]:
    return {"event": event, "at": T0 + seconds, **fields}


INBOUND = [at("launched", 0), line(), at("joined", 4.0), at("first_audio", 5.0), at("caller_hung_up", 64.5),
           at("ended", 65.0, reason="completed")]


def test_an_inbound_call_is_priced_from_its_bots_join_to_the_callers_hang_up_rounded_up_to_the_minute() -> None:
    cost = price_telephony(INBOUND, now=T0 + 999, running=False)
    assert cost is not None and isinstance(cost.own, LegCost) and cost.own.answered and not cost.own.live
    assert cost.own.seconds == pytest.approx(60.5)
    assert cost.own.billed_seconds == 120 and cost.usd == pytest.approx(1.2)  # two minutes at $0.60
    assert cost.as_json() == {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.6, "increment_seconds": 60,
                              "answered": True, "seconds": 60.5, "billed_minutes": 2.0, "usd": 1.2}


def test_a_carrier_billing_by_the_second_is_billed_the_seconds_rounded_up() -> None:
    events = [line(increment=1) if e["event"] == "telephony" else e for e in INBOUND]
    cost = price_telephony(events, now=T0, running=False)
    assert cost is not None and isinstance(cost.own, LegCost)
    assert cost.own.billed_seconds == 61 and cost.usd == pytest.approx(0.61)


def test_an_outbound_call_is_priced_from_its_answer_not_from_its_bot_joining_before_it_rang() -> None:
    events = [at("launched", 0), line("outbound"), at("joined", 1.0), at("call_outcome", 9.0, outcome="answered"),
              at("ended", 39.0)]
    cost = price_telephony(events, now=T0, running=False)
    assert cost is not None and isinstance(cost.own, LegCost)
    assert cost.own.seconds == pytest.approx(30.0) and cost.own.billed_seconds == 60


def test_a_call_never_answered_costs_no_minutes() -> None:
    events = [at("launched", 0), line("outbound"), at("joined", 1.0), at("call_outcome", 31.0, outcome="no_answer"),
              at("ended", 31.0, reason="no_answer")]
    cost = price_telephony(events, now=T0, running=False)
    assert cost is not None and not cost.own.answered and cost.usd == 0.0
    assert cost.as_json()["answered"] is False


def test_a_call_still_up_is_priced_until_now_and_its_cost_is_estimated() -> None:
    events = INBOUND[:4]
    cost = price_telephony(events, now=T0 + 34.0, running=True)
    assert cost is not None and cost.own.live and cost.own.seconds == pytest.approx(30.0)
    session = SessionCosts("ecs", PRICE, clock=lambda: T0 + 34.0).of(events, running=True)
    assert session is not None and session.estimated and session.as_json()["telephony"]["live"] is True


def test_a_session_without_a_priced_trunk_has_no_line() -> None:
    events = [e for e in INBOUND if e["event"] != "telephony"]
    assert price_telephony(events, now=T0, running=False) is None
    cost = SessionCosts("ecs", PRICE).of(events, running=False)
    assert cost is not None and "telephony" not in cost.as_json() and "telephony_usd" not in cost.as_json()


def test_the_sessions_cost_adds_the_minutes_to_its_total_its_bill_and_its_usage_rows() -> None:
    cost = SessionCosts("ecs", PRICE).of(INBOUND, running=False)
    assert cost is not None and cost.telephony_usd == pytest.approx(1.2)
    machine = 65.0 / 3600
    assert cost.total == pytest.approx(machine + 1.2) and cost.billed_usd == pytest.approx(machine + 1.2)
    shown = cost.as_json()
    assert shown["telephony_usd"] == 1.2 and shown["telephony"]["billed_minutes"] == 2.0
    rows = {(a.model, a.measure): a.value for a in amounts(cost)}
    assert rows[("", "telephony_usd")] == pytest.approx(1.2)
    sums = {"sessions": 1.0, "seconds": 65.0, "machine_usd": machine, "telephony_usd": 1.2}
    totals = summarise({"": sums, "acme": sums}, "key")["totals"]
    assert totals["telephony_usd"] == 1.2 and totals["cost_usd"] == pytest.approx(round(machine + 1.2, 6))


@pytest.mark.parametrize("given", [
    {"trunk": "t", "direction": "sideways", "usd_per_minute": 0.01},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": -0.01},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": 11.0},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": True},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": float("nan")},
    {"trunk": "", "direction": "inbound", "usd_per_minute": 0.01},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": 0.01, "increment_seconds": 0},
    {"trunk": "t", "direction": "inbound", "usd_per_minute": 0.01, "increment_seconds": 6.5},
    "twilio",
])
def test_a_line_of_any_other_shape_is_not_read(given: object) -> None:
    assert line_of(given) is None


def test_a_line_reads_back_as_it_was_written() -> None:
    written = TrunkLine("twilio", "outbound", 0.013, 6)
    assert line_of(written.as_json()) == written


def bridged(leg: str, seconds: float, **fields: Any) -> dict[str, Any]:
    priced = {"trunk": "twilio", "direction": "outbound", "usd_per_minute": 1.2, "increment_seconds": 60,
              "time_limit_seconds": 600} if leg == "answered" else {"trunk": "twilio"}
    return at("bridged_leg", seconds, leg=leg, **{**priced, **fields})


def test_a_bridged_transfers_leg_to_the_person_is_priced_at_the_outbound_price_beside_the_callers_minutes() -> None:
    # The session ended `transferred` at the bridge (65 s); the edge then told the person's leg: up 120.2 s.
    events = [*INBOUND, bridged("answered", 64.9), bridged("ended", 185.1)]
    cost = price_telephony(events, now=T0 + 999, running=False)
    assert cost is not None and cost.own.seconds == pytest.approx(60.5) and not cost.any_live  # the caller's: as before
    assert cost.bridged is not None and cost.bridged.seconds == pytest.approx(120.2)
    assert cost.usd == pytest.approx(1.2 + 3 * 1.2)  # two minutes at $0.60, three at the outbound $1.20
    assert cost.as_json()["bridged"] == {"trunk": "twilio", "direction": "outbound", "usd_per_minute": 1.2,
                                         "increment_seconds": 60, "answered": True, "seconds": 120.2,
                                         "billed_minutes": 3.0, "usd": 3.6}
    assert cost.as_json()["usd"] == 1.2  # the caller's own line's figure; the sum is the cost's telephony_usd
    session = SessionCosts("ecs", PRICE, clock=lambda: T0 + 999).of(events, running=False)
    assert session is not None and session.telephony_usd == pytest.approx(4.8) and not session.estimated


def test_a_bridged_leg_whose_end_is_not_told_is_priced_until_now_at_most_its_time_limit() -> None:
    events = [*INBOUND, bridged("answered", 65.0)]
    cost = price_telephony(events, now=T0 + 125.0, running=False)
    assert cost is not None and cost.bridged is not None and cost.bridged.live and cost.any_live
    assert cost.bridged.seconds == pytest.approx(60.0)
    capped = price_telephony(events, now=T0 + 65.0 + 3600, running=False)
    assert capped is not None and capped.bridged is not None and not capped.bridged.live
    assert capped.bridged.seconds == pytest.approx(600.0)  # the edge hangs both legs up at the limit


def test_a_trunk_priced_outbound_only_prices_the_leg_it_bridges_and_says_the_callers_own_is_not_priced() -> None:
    # `usd_per_minute = {outbound = 0.0097}`: the edge gives the inbound call no line, yet bridges the person at
    # the outbound price; the person talks two hours.
    price = TrunkPrice(inbound=None, outbound=0.0097, increment_seconds=60)
    assert price.line("twilio", "inbound") is None  # no `telephony` event on the session
    answered = {**price.line("twilio", "outbound"), "time_limit_seconds": 7200}  # type: ignore[dict-item]
    events = [at("launched", 0), at("joined", 4.0), at("first_audio", 5.0), at("ended", 102.0, reason="transferred"),
              at("bridged_leg", 103.0, leg="answered", **answered),
              at("bridged_leg", 103.0 + 7200, leg="ended", trunk="twilio")]
    cost = price_telephony(events, now=T0 + 9999, running=False)
    assert cost is not None and cost.usd == pytest.approx(120 * 0.0097)
    shown = cost.as_json()
    assert shown["bridged"]["usd"] == pytest.approx(1.164) and shown["bridged"]["billed_minutes"] == 120.0
    # The caller's own leg: its time told, its price left out (not "usd": 0, which would say the call was free).
    assert {k: v for k, v in shown.items() if k != "bridged"} == {
        "trunk": "twilio", "direction": "inbound", "answered": True, "seconds": 98.0, "priced": "not priced",
        "why": "trunk twilio has no inbound price in the SIP edge's file"}
    session = SessionCosts("ecs", PRICE, clock=lambda: T0 + 9999).of(events, running=False)
    assert session is not None and session.telephony_usd == pytest.approx(1.164) and not session.estimated
    machine = 102.0 / 3600
    assert session.total == pytest.approx(machine + 1.164) and session.billed_usd == pytest.approx(machine + 1.164)
    answer = session.as_json()  # GET /sessions/{id}, the list, report.json and the session.ended webhook
    assert answer["telephony_usd"] == 1.164 and answer["telephony"] == shown
    assert "the SIP call's own minutes: trunk twilio has no inbound price in the SIP edge's file" in (
        answer["not_counted"])
    assert CostOut.model_validate(answer).model_dump(exclude_none=True)["telephony"] == shown  # the API's model
    rows = {(a.model, a.measure): a.value for a in amounts(session)}  # GET /usage and the key's spend
    assert rows[("", "telephony_usd")] == pytest.approx(1.164)


def test_an_unpriced_outbound_calls_leg_is_told_outbound_from_its_answer() -> None:
    events = [at("launched", 0), at("joined", 1.0), at("call_outcome", 9.0, outcome="answered"),
              at("ended", 39.0, reason="transferred"), bridged("answered", 39.5), bridged("ended", 99.5)]
    cost = price_telephony(events, now=T0 + 999, running=False)
    assert cost is not None and cost.as_json()["direction"] == "outbound" and cost.own.seconds == pytest.approx(30.0)
    assert cost.usd == pytest.approx(1.2) and "usd" not in cost.as_json()


def test_a_session_with_neither_a_line_nor_a_priced_bridged_leg_has_no_line() -> None:
    events = [*[e for e in INBOUND if e["event"] != "telephony"], bridged("answered", 66.0, usd_per_minute=-1.0)]
    assert price_telephony(events, now=T0 + 999, running=False) is None


def test_the_edges_own_count_of_the_answered_seconds_is_priced_before_the_dispatchers_later_view() -> None:
    """The edge counted 58.2 s from its 200 OK to the BYE; the dispatcher saw the hang-up 2.3 s later than that
    (its stream's close, a busy machine): the edge's count is what the carrier bills."""
    told = at("sip_ended", 64.4, by="caller", how="bye", answered_seconds=58.2)
    cost = price_telephony([*INBOUND[:4], told, *INBOUND[4:]], now=T0 + 999, running=True)
    assert cost is not None and isinstance(cost.own, LegCost) and cost.own.answered and not cost.own.live
    assert cost.own.seconds == pytest.approx(58.2) and cost.own.billed_seconds == 60
    for unusable in (-1.0, "58.2", True, float("nan")):  # never a number the API would have taken
        events = [*INBOUND[:4], at("sip_ended", 64.4, by="caller", how="bye", answered_seconds=unusable), *INBOUND[4:]]
        priced = price_telephony(events, now=T0 + 999, running=False)
        assert priced is not None and priced.own.seconds == pytest.approx(60.5), unusable


def test_an_earlier_sip_end_without_the_edges_count_does_not_hide_it() -> None:
    """A client holding the number's key may tell a `sip_end` of its own before the edge does (without the count,
    which the API takes only from the edge): the edge's later count is still what is priced."""
    bare = at("sip_ended", 63.0, by="caller", how="bye")
    told = at("sip_ended", 64.4, by="caller", how="bye", answered_seconds=58.2)
    cost = price_telephony([*INBOUND[:4], bare, told, *INBOUND[4:]], now=T0 + 999, running=False)
    assert cost is not None and cost.own.seconds == pytest.approx(58.2)


def test_an_edge_count_of_nothing_is_a_call_never_answered() -> None:
    """The trunk's CANCEL crossed the edge's 200 OK: the edge counts 0, and the call costs no minutes, whatever
    the dispatcher saw of its bot."""
    told = at("sip_ended", 1.0, by="caller", how="cancel", status=487, answered_seconds=0.0)
    cost = price_telephony([*INBOUND[:4], told, *INBOUND[4:]], now=T0 + 999, running=False)
    assert cost is not None and not cost.own.answered and cost.own.billed_seconds == 0
