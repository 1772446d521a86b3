"""Hostile review of where a call may be handed (dispatcher/phone/transfer_allow.py), now that every
cloud's stack sets `PHONE_TRANSFER_TARGETS` from `phoneTransferTargets` (stacks/config/phone_transfers.py):
a finding, fixed: transfers take calling out's risky-prefix rule."""

from __future__ import annotations

import pytest

from dispatcher.api_error import ApiError
from dispatcher.phone.transfer_allow import check_allowed, parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from voicefleet_settings.call_policy import destination_allowed


@pytest.mark.parametrize(("listed", "to"), [
    ("+1*", "+19005550123"),  # US premium rate
    ("+1*", "+19765550123"),
    ("+8*", "+881631234567"),  # Global Mobile Satellite System, billed at satellite rates
    ("+9*", "+979123456789"),  # International Premium Rate Service
])
def test_a_wide_transfer_prefix_never_reaches_a_risky_number(listed: str, to: str) -> None:
    """docs/phone.md's own advice for calls placed out (`TWILIO_DESTINATIONS`, call_policy.py
    `destination_allowed`): premium and satellite numbers "are refused unless a pattern names them at
    least as closely (`+1900*`, not `+1*`)". Transfers take no such floor: `TransferTargets.allows` is a
    bare `startswith`, and a transfer's `to` comes from the bot's `transfer_call`, steered by what the
    caller says (transfer_allow.py's docstring names this very attack). `+1*` is what an operator writes
    for "North America" (Pulumi.yaml's own example prefix is `+1415*`); the preview accepts it silently.
    The calling-out policy refuses the same number under the same pattern, and the SIP edge applies its
    trunk's `destinations` to a transfer it dials (sipedge/call_transfer.py:115), but a Twilio, Telnyx or
    Plivo transfer has only this list. Fix: `allows` applies
    `destination_allowed`'s risky-prefix rule (one table: voicefleet_settings/call_policy.py
    RISKY_PREFIXES), and the preview warns on a prefix of a whole country code."""
    targets = parse_transfer_targets(listed)
    assert not destination_allowed((listed,), to)  # calling out to it under the same pattern: refused
    with pytest.raises(ApiError) as refused:
        check_allowed(targets, TransferTarget(to))
    assert refused.value.status == 403
