"""The dispatcher's own lines are masked like the server's: an unexpected error's line names the
request's path, and the Daily dial-in webhook's path carries its reusable secret."""

from __future__ import annotations

import io
import logging

from dispatcher.observability import log_redaction

SECRET = "daily-dialin-secret-" + "s" * 20


def test_the_unhandled_error_line_masks_the_dialin_secret_in_its_path() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log_redaction.install()
        # dispatcher/api/error_handlers.py `_unexpected`, as it logs any error a route did not expect
        logging.getLogger("dispatcher").error("unhandled error on %s %s", "POST", f"/phone/daily/dialin/{SECRET}")
    finally:
        root.removeHandler(handler)
    assert SECRET not in out.getvalue(), out.getvalue()


def test_a_carrier_callback_s_mac_is_masked_and_its_session_kept() -> None:
    """The MAC in a placed call's or a recording's callback URL speaks for the session wherever the carrier's
    signature does not cover the URL (Telnyx's): a log reader could post another signed body there."""
    mac = "c2Vzc2lvbi1tYWMtb2YtMThi"
    for path in (f"/phone/telnyx/calls/s-1/{mac}/status", f"/phone/twilio/calls/s-1/{mac}/amd",
                 f"/phone/telnyx/recordings/s-1/{mac}", f"/phone/twilio/warm/s-1/{'a' * 32}/{mac}/briefed",
                 f"/phone/telnyx/warm/s-1/{'a' * 32}/{mac}/status", f"/phone/plivo/warm/s-1/{'a' * 32}/{mac}/answer"):
        shown = log_redaction.mask_secret_paths(f'"POST {path} HTTP/1.1" 204')
        assert mac not in shown and "/[redacted]" in shown and "/s-1/" in shown, shown


def test_the_exotel_connect_applet_urls_secret_is_masked_and_its_callsid_kept() -> None:
    """The segment of the Connect applet's URL is derived from the Exotel credential and reusable: whoever reads
    it may ask for a pending transfer's number (dispatcher/phone/exotel_connect.py)."""
    secret = "ZXhvdGVsLWNvbm5lY3Qtc2VjcmV0LW9mLTQzLWNoYXJz"
    shown = log_redaction.mask_secret_paths(f'"GET /phone/exotel/connect/{secret}?CallSid=abc HTTP/1.1" 200')
    assert secret not in shown and "/phone/exotel/connect/[redacted]?CallSid=abc" in shown, shown
