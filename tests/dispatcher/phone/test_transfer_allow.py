"""PHONE_TRANSFER_TARGETS: the numbers, prefixes and SIP hosts a call may be handed to, and nothing else."""

from __future__ import annotations

import pytest

from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget

LIST = "+14155550123, +4420*, PBX.example.com"


@pytest.mark.parametrize("to", ["+14155550123", "+442071838750", "sip:desk@pbx.example.com",
                                "sips:desk@PBX.example.com:5061;transport=tls"])
def test_listed_numbers_prefixes_and_sip_hosts_are_allowed(to: str) -> None:
    targets = parse_transfer_targets(LIST)
    assert targets is not None and targets.allows(TransferTarget(to))


@pytest.mark.parametrize("to", ["+14155550124", "+141555501234", "+19005550100", "+882123456789", "+4421",
                                "sip:+19005550100@203.0.113.7:5080;transport=tcp",
                                "sip:desk@pbx.example.com.attacker.example", "sip:pbx.example.com@evil.example"])
def test_anything_off_the_list_is_refused(to: str) -> None:
    targets = parse_transfer_targets(LIST)
    assert targets is not None and not targets.allows(TransferTarget(to))


@pytest.mark.parametrize(("listed", "to"), [("+19005550123", "+19005550123"), ("+1900*", "+19005550123"),
                                            ("+8816*", "+881631234567"), ("+1*", "+14155550123")])
def test_a_risky_number_is_reached_when_named_as_closely_as_its_risky_prefix(listed: str, to: str) -> None:
    """Calling out's rule (call_policy.py `destination_allowed`): `+1*` alone never reaches `+1900…`."""
    targets = parse_transfer_targets(listed)
    assert targets is not None and targets.allows(TransferTarget(to))


def test_an_empty_list_is_none_and_a_bad_entry_is_named() -> None:
    assert parse_transfer_targets("") is None and parse_transfer_targets(" , ") is None
    for bad in ("14155550123", "+1*5", "*", "sip:desk@pbx.example.com", "+0*"):
        with pytest.raises(ValueError, match="PHONE_TRANSFER_TARGETS"):
            parse_transfer_targets(bad)
