"""A signed Telnyx body vouches for its call only when it is the call's first TeXML request, and once.

Ed25519 signs `timestamp|body`, not the URL: Telnyx signs a call's status and recording callbacks with
the account's key too, often sent to another service. Posted to /phone/telnyx by whoever read one, a
status or answering-machine callback (`CallbackSource`, `AnsweredBy`) is refused; any other such body
is still answered (it is signed), but its stream names no call, so no transfer can redirect the live
call it is about.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from dispatcher.phone.tokens import CallGrant
from tests.dispatcher.api.test_webhooks import stream_token, telnyx_headers
from tests.support.phone_dispatcher import Phone, phone_dispatcher

ACCOUNT_SID = "f5586561-8ff0-4291-a51b-c7dfe4139ff9"
FIRST_REQUEST = {"AccountSid": ACCOUNT_SID, "From": "+14155550100", "To": "+14155550199", "CallStatus": "ringing"}


@pytest.fixture
async def keyed() -> AsyncIterator[Phone]:
    async for phone in phone_dispatcher(keyed=True):
        yield phone


async def vouched_call(phone: Phone, fields: dict[str, str], sent: int | None = None) -> str | None:
    """The call the stream token of this signed body's TeXML answer names (None: not transferable)."""
    body = urlencode(fields).encode()
    answer = await phone.api.post("/phone/telnyx", content=body,
                                  headers=telnyx_headers(phone, body, sent or int(time.time())))
    assert answer.status_code == 200, answer.text  # signed: answered either way
    grant: CallGrant = phone.app.state.voicefleet.phone.tokens.check(stream_token(answer.text, "telnyx"), "telnyx")
    return grant.call


@pytest.mark.parametrize("callback", [
    {"CallStatus": "in-progress", "CallbackSource": "call-progress-events", "SequenceNumber": "2"},  # answered
    {"CallStatus": "ringing", "CallbackSource": "call-progress-events", "SequenceNumber": "1"},  # ringing
    {"AnsweredBy": "human", "MachineDetectionDuration": "2400"},  # an answering-machine verdict
])
async def test_a_signed_status_or_amd_callback_is_refused_and_spends_nothing(
    keyed: Phone, callback: dict[str, str],
) -> None:
    sid = "v3:victim-call_x"
    body = urlencode({**{k: v for k, v in FIRST_REQUEST.items() if k != "CallStatus"}, "CallSid": sid,
                      **callback}).encode()
    answer = await keyed.api.post("/phone/telnyx", content=body, headers=telnyx_headers(keyed, body, int(time.time())))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "not_a_new_call", answer.text
    assert await vouched_call(keyed, {**FIRST_REQUEST, "CallSid": sid}) == f"{ACCOUNT_SID}/{sid}"


@pytest.mark.parametrize("callback", [
    {"CallStatus": "in-progress", "RecordingSid": "r-1", "RecordingUrl": "https://x.example/r.wav"},
    {"CallStatus": "in-progress"},  # a verb's action request, mid-call
    {},  # an HttpRequest's action callback: no CallStatus at all
])
async def test_a_signed_callback_about_a_call_gets_no_token_for_that_call(
    keyed: Phone, callback: dict[str, str],
) -> None:
    sid = "v3:victim-call_x"
    fields = {**{k: v for k, v in FIRST_REQUEST.items() if k != "CallStatus"}, "CallSid": sid, **callback}
    assert await vouched_call(keyed, fields) is None
    # The call's own first request still vouches for it: the callback did not spend it.
    assert await vouched_call(keyed, {**FIRST_REQUEST, "CallSid": sid}) == f"{ACCOUNT_SID}/{sid}"


async def test_a_call_is_vouched_for_once_however_many_first_requests_name_it(keyed: Phone) -> None:
    sid = "v3:once-call_x"
    now = int(time.time())
    assert await vouched_call(keyed, {**FIRST_REQUEST, "CallSid": sid}, now) == f"{ACCOUNT_SID}/{sid}"
    # Another signature over a body of the same shape (a failover retry, or one read elsewhere): answered,
    # not transferable, so a second stream can never redirect the first one's call.
    assert await vouched_call(keyed, {**FIRST_REQUEST, "CallSid": sid}, now - 1) is None
