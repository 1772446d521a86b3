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
