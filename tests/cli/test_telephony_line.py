"""`voicefleet session ID`'s TELEPHONY line: a SIP call's minutes at its trunk's price, and a bridged transfer's
leg to the person, as the session's `cost.telephony` says them; nothing for a session without a priced trunk."""

from __future__ import annotations

from voicefleet.telephony_line import telephony_line

LINE = {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.0085, "increment_seconds": 60,
        "answered": True, "seconds": 78.214, "billed_minutes": 2.0, "usd": 0.017}


def test_an_answered_call_shows_its_seconds_its_billed_minutes_and_its_price() -> None:
    assert telephony_line({"telephony": LINE}) == (
        "0.017 USD: trunk twilio, inbound, 78.214 s answered, billed 2.0 min at 0.0085/min")
    assert "still up" in (telephony_line({"telephony": {**LINE, "live": True}}) or "")


def test_a_call_never_answered_and_a_session_without_a_priced_trunk() -> None:
    unanswered = {**LINE, "answered": False, "seconds": 0.0, "billed_minutes": 0.0, "usd": 0.0}
    shown = telephony_line({"telephony_usd": 0.0, "telephony": unanswered})
    assert shown == "0 USD: trunk twilio, inbound, not answered"
    assert telephony_line({"total": 0.1}) is None


BRIDGED = {"trunk": "twilio", "direction": "outbound", "usd_per_minute": 0.0097, "increment_seconds": 60,
           "answered": True, "seconds": 7200.0, "billed_minutes": 120.0, "usd": 1.164}


def test_a_bridged_leg_is_shown_after_the_callers_and_the_figure_first_is_both_legs_sum() -> None:
    shown = telephony_line({"telephony_usd": 1.181, "telephony": {**LINE, "bridged": BRIDGED}})
    assert shown == ("1.181 USD: trunk twilio, inbound, 78.214 s answered, billed 2.0 min at 0.0085/min; "
                     "bridged to a person, 1.164 USD: 7200.0 s answered, billed 120.0 min at 0.0097/min")


def test_a_callers_leg_the_trunk_has_no_price_for_is_said_not_priced_never_0_usd() -> None:
    own = {"trunk": "twilio", "direction": "inbound", "answered": True, "seconds": 98.0, "priced": "not priced",
           "why": "trunk twilio has no inbound price in the SIP edge's file"}
    shown = telephony_line({"telephony_usd": 1.164, "telephony": {**own, "bridged": BRIDGED}})
    assert shown == ("1.164 USD: trunk twilio, inbound, 98.0 s answered, not priced (trunk twilio has no inbound "
                     "price in the SIP edge's file); bridged to a person, 1.164 USD: 7200.0 s answered, billed "
                     "120.0 min at 0.0097/min")
