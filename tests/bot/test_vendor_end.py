"""The vendor's end of a converged session, told from the errors Pipecat 1.14's services report (their
words as the bot host sees them) and, for Gemini, from what Pipecat logged of its connections."""

from __future__ import annotations

import pytest

from bot.vendor_end import VendorEndKind, VendorWatch

OPENAI = "OpenAIRealtimeLLMService#0"
GEMINI_TASK = "GeminiLiveLLMService#0::_connection_task_handler"
EXPIRED = (f"{OPENAI}: Error: type='error' error=RealtimeError(type='invalid_request_error', "
           "code='session_expired', message='Your session hit the maximum duration of 60 minutes.')")


@pytest.mark.parametrize(("detail", "kind"), [
    (EXPIRED, VendorEndKind.CAP),
    (f"{OPENAI}: Error connecting: [Errno 111] Connect call failed ('127.0.0.1', 25199)", VendorEndKind.UNREACHABLE),
    (f"{OPENAI}: Error connecting: server rejected WebSocket connection: HTTP 403", VendorEndKind.REFUSED),
    (f"{OPENAI}: Error sending client event: received 1001 (going away); then sent 1001 (going away)",
     VendorEndKind.CLOSED),
    (f"{OPENAI}::_receive_task_handler: received 1011 (internal error) Deadline expired", VendorEndKind.CLOSED),
    (f"{OPENAI}: Error: type='error' error=RealtimeError(code='unknown_parameter')", None),
    ("DeepgramSTTService#0: Error connecting: [Errno 111] Connect call failed", None),
])  # fmt: skip
def test_openai_errors_tell_its_end_from_an_error_it_goes_on_after(detail: str, kind: VendorEndKind | None) -> None:
    end = VendorWatch().judge(detail)
    assert (end.kind if end else None) is kind
    if end is not None:
        assert end.detail.startswith(f"OpenAI Realtime {kind.what}: ") if kind else False
        assert end.detail.endswith(detail) and end.processor == OPENAI


def test_gemini_refusing_a_resumption_is_not_a_bad_set_up() -> None:
    refused = f"{GEMINI_TASK}: 1007 None. Request contains an invalid argument."
    at_start = VendorWatch()
    assert (end := at_start.judge(refused)) is not None and end.kind is VendorEndKind.REFUSED
    resumed = VendorWatch()
    for line in ("Connecting to Gemini service", "Connected to Gemini service",
                 "Connection error (failure 1/3): 1011 None. Deadline expired before operation could complete.",
                 "Attempting reconnection (1/3)", "Disconnecting from Gemini service",
                 "Connecting to Gemini service with session_resumption_handle: handle-1"):
        resumed.logged(line)
    end = resumed.judge(refused)
    assert end is not None and end.kind is VendorEndKind.RESUMPTION_REFUSED
    assert "after 1011 None. Deadline expired" in end.detail and end.detail.endswith(refused)


def test_gemini_unreachable_at_the_start_and_a_resumption_that_went_through() -> None:
    watch = VendorWatch()
    end = watch.judge(f"{GEMINI_TASK}: [Errno 111] Connect call failed ('127.0.0.1', 4431)")
    assert end is not None and end.kind is VendorEndKind.UNREACHABLE and end.unreachable
    watch = VendorWatch()
    for line in ("Connected to Gemini service", "Connecting to Gemini service with session_resumption_handle: h",
                 "Connected to Gemini service"):
        watch.logged(line)
    end = watch.judge(f"{GEMINI_TASK}: 1011 None. Internal error")
    assert end is not None and end.kind is VendorEndKind.CLOSED and watch.resuming_after is None
