"""A secret path in an exception is masked too: in its traceback's text (which the handler formats
after the filters ran) and as a log argument, in text and JSON lines alike."""

from __future__ import annotations

import io
import logging

import pytest

from dispatcher.observability import log_format, log_redaction

SECRET = "daily-dialin-secret-" + "s" * 20


@pytest.mark.parametrize("chosen", ["text", "json"])
def test_an_exceptions_message_with_the_dialin_secret_is_masked(chosen: str) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(log_format.JsonLines() if chosen == "json" else logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log_redaction.install()
        try:
            raise ValueError(f"no answer for url 'http://eu.internal/phone/daily/dialin/{SECRET}'")
        except ValueError:
            logging.getLogger("dispatcher").exception("unhandled error on %s %s", "POST", "/phone/daily/dialin/x")
    finally:
        root.removeHandler(handler)
    assert SECRET not in out.getvalue(), out.getvalue()


def test_an_exception_given_as_an_argument_is_masked() -> None:
    """`log.warning("... %s", exc)`: the secret filter looked at str arguments only, and the
    escaping filter after it turns the exception into text unmasked."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    others, root.handlers = root.handlers, [handler]  # as in the dispatcher: one root handler (pytest's would
    try:                                              # turn the argument into masked text first)
        log_redaction.install()
        error = ValueError(f"no answer for url 'http://eu.internal/phone/daily/dialin/{SECRET}'")
        logging.getLogger("dispatcher").error("regions: relay failed: %s", error)
    finally:
        root.handlers = others
    assert "relay failed" in out.getvalue() and SECRET not in out.getvalue(), out.getvalue()
