"""Hostile review of the Telnyx warm routes' cross-route replay rule (routers/telnyx_warm.py, routers/twilio_warm.py
`WarmCallback.unspent`). Telnyx signs the body, not the URL, so the person's status callback is as well signed at
`briefed`; the change refuses it there only if the replay store has it spent. A status callback is spent only
once the status route acted, so one the status route answered 503 (the store blipped while it kept the status)
stays unspent: posted at `briefed` it marks the transfer briefed, with no race at all. A status callback says
`CallbackSource=call-progress-events` and a `<Redirect>`'s body does not (dispatcher/phone/telnyx_calls.py
`is_first_voice_request` reads Telnyx's bodies the same way), so `briefed` refuses it by its shape alone
(403 `callback_not_briefing`)."""

from __future__ import annotations

import asyncio

from dispatcher.phone.twilio_warm import record_key
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed
from tests.dispatcher.phone.test_telnyx_warm_paths import StoreGoesDown

telnyx, setup = on_telnyx.telnyx, on_telnyx.setup  # the fixtures, by the names the tests ask for


async def test_a_status_callback_answered_503_is_no_briefing_when_posted_at_briefed(setup: on_telnyx.Setup) -> None:
    warm = setup.app.state.voicefleet.phone.telnyx_warm
    records = warm._records = StoreGoesDown(warm._records)  # noqa: SLF001 (the store blip, injected)
    task = on_telnyx.warm(setup)
    person = await on_telnyx.consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    transfer = status_url.split("/")[-3]
    person.status = "in-progress"
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": person.one("From") or "", "To": person.one("To") or ""})
    records.down = True
    refused = await post(setup.app, status_url, body, headers)
    records.down = False
    copied = await post(setup.app, status_url.removesuffix("/status") + "/briefed", body, headers)
    outcome = await records.held(record_key(transfer, "outcome"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert refused.status_code == 503, refused.text
    assert outcome is None, f"a status callback posted at briefed decided the transfer {outcome!r}: {copied.text}"
    assert (copied.status_code, copied.json()["error"]["code"]) == (403, "callback_not_briefing"), copied.text
