"""`voicefleet session ID`'s TELEPHONY line: a SIP call's minutes at its trunk's price, as the session's
`cost.telephony` says them; nothing for a session without a priced trunk."""

from __future__ import annotations

from voicefleet.telephony_line import telephony_line

LINE = {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.0085, "increment_seconds": 60,
        "answered": True, "seconds": 78.214, "billed_minutes": 2.0, "usd": 0.017}


def test_an_answered_call_shows_its_seconds_its_billed_minutes_and_its_price() -> None:
    assert telephony_line({"telephony": LINE}) == (
        "0.017 USD: trunk twilio, inbound, 78.214 s answered, billed 2.0 min at 0.0085/min")
    assert "still up" in (telephony_line({"telephony": {**LINE, "live": True}}) or "")


def test_a_call_never_answered_and_a_session_without_a_priced_trunk() -> None:
    assert telephony_line({"telephony": {**LINE, "answered": False}}) == "0 USD: trunk twilio, inbound, not answered"
    assert telephony_line({"total": 0.1}) is None
