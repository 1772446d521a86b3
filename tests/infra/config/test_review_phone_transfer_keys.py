"""Hostile review of the stacks' transfer keys (stacks/config/phone_transfers.py): a finding, fixed:
the limit has a day for maximum."""

from __future__ import annotations

from tests.infra.config.test_settings import error
from tests.infra.conftest import StackRunner


def test_a_transfer_time_limit_past_a_day_fails_the_preview(stack: StackRunner) -> None:
    """The limit is the brake on what one transferred call costs (docs/phone.md: "else Twilio's own limit,
    hours, would bound what a call costs"); the catalogue's PHONE_TRANSFER_TIME_LIMIT_SECONDS has a minimum
    (1) and no maximum, and the preview checks with the dispatcher's own parser, so 100000000 (three
    years) goes to every cloud's dispatcher. Twilio caps a call at 24 hours at most (its configurable call
    limits: "any value between just one minute, all the way up to that 24 hour limit",
    https://www.twilio.com/en-us/blog/introducing-configurable-call-limits-for-programmable-voice), but a
    transfer the SIP edge bridges (dispatcher/phone/sip_transfers.py) has only this limit, so a toll-fraud
    transfer that slips past the list runs on. Fix: `maximum=86400` in the catalogue entry (the preview
    then refuses it with the key named, as it does -5)."""
    message = error(stack, "aws", phoneTransferTimeLimitSeconds="100000000")
    assert "voicefleet:phoneTransferTimeLimitSeconds" in message, message
