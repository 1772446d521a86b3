"""A transfer's target, checked before anything changes, and the TwiML that rings it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dispatcher.errors import ApiError
from dispatcher.phone.transfer_target import TransferTarget, transfer_target


@pytest.mark.parametrize("to", ["+14155550123", "+442071838750", "sip:desk@pbx.example.com",
                                "sips:desk@pbx.example.com:5061;transport=tls"])
def test_e164_numbers_and_sip_uris_are_taken(to: str) -> None:
    assert transfer_target(to, "cold") == TransferTarget(to, "cold")
    assert transfer_target(to, None).mode == "cold"


@pytest.mark.parametrize("to", ["4155550123", "+0123", "+1" + "2" * 15, "sip:no-host", "tel:+14155550123",
                                "+1415</Number><Play>x</Play>", "", None, 14155550123])
def test_anything_else_is_a_422_naming_both_forms(to: object) -> None:
    with pytest.raises(ApiError) as refused:
        transfer_target(to, "cold")
    assert (refused.value.status, refused.value.code) == (422, "invalid_target")
    assert "E.164" in refused.value.message and "sip:" in refused.value.message


def test_warm_is_taken_with_or_without_a_summary_and_an_unknown_mode_is_a_422() -> None:
    assert transfer_target("+14155550123", "warm") == TransferTarget("+14155550123", "warm")
    said = "Ana, order 1042:\nwants a refund."
    assert transfer_target("+14155550123", "warm", said) == TransferTarget("+14155550123", "warm", said)
    assert transfer_target("+14155550123", "warm", "x" * 300).summary == "x" * 300  # about 18 s of speech
    with pytest.raises(ApiError) as other:
        transfer_target("+14155550123", "blind")
    assert other.value.code == "invalid_mode" and '"warm"' in other.value.message


@pytest.mark.parametrize("summary", ["", "   ", "x" * 301, 42, ["a"], "ring\x07me", "a\x1b[2Jb", "half \ud800"])
def test_a_summary_that_is_not_short_speakable_text_is_a_422(summary: object) -> None:
    with pytest.raises(ApiError) as refused:
        transfer_target("+14155550123", "warm", summary)
    assert (refused.value.status, refused.value.code) == (422, "invalid_summary")
    assert "300" in refused.value.message


def test_a_summary_with_a_cold_transfer_is_a_422_naming_warm() -> None:
    with pytest.raises(ApiError) as refused:
        transfer_target("+14155550123", "cold", "hello")
    assert refused.value.code == "invalid_summary" and '"warm"' in refused.value.message


def test_the_twiml_dials_the_number_or_the_sip_uri_and_nothing_else_for_at_most_the_time_limit() -> None:
    number = ET.fromstring(TransferTarget("+14155550123").twiml(600))
    assert [(e.tag, e.text) for e in number.iter()] == [("Response", None), ("Dial", None), ("Number", "+14155550123")]
    assert number.find("Dial").attrib == {"timeLimit": "600"}  # type: ignore[union-attr]
    sip = ET.fromstring(TransferTarget("sip:a&b@pbx.example.com").twiml(600))  # escaped, still one SIP URI
    assert [(e.tag, e.text) for e in sip.iter()][-1] == ("Sip", "sip:a&b@pbx.example.com")


@pytest.mark.parametrize("to", ["sip:desk@pbx.example.com:5099;maddr=127.0.0.1",
                                "sip:desk@pbx.example.com;transport=udp;MADDR=10.0.0.1",
                                "sip:desk@pbx.example.com;method=BYE", "sip:desk@pbx.example.com;ttl=1",
                                "sip:desk@pbx.example.com;lr", "sip:desk@pbx.example.com;x-route=elsewhere"])
def test_a_sip_uri_parameter_that_could_send_the_call_elsewhere_is_a_422_naming_the_ones_taken(to: str) -> None:
    # The allow list checks the host; RFC 3261's maddr overrides it as where the request goes.
    with pytest.raises(ApiError) as refused:
        transfer_target(to, "cold")
    assert (refused.value.status, refused.value.code) == (422, "invalid_target")
    assert ";transport=" in refused.value.message and "sip:desk@pbx.example.com" in refused.value.message


@pytest.mark.parametrize("to", ["sip:+14155550123@pbx.example.com;user=phone",
                                "sip:desk@pbx.example.com;TRANSPORT=tcp"])
def test_the_harmless_sip_uri_parameters_are_taken(to: str) -> None:
    assert transfer_target(to, "cold").to == to
