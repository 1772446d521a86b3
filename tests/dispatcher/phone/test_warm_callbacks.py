"""A warm transfer's callback routes, either carrier's (dispatcher/api/routers/twilio_warm.py, telnyx_warm.py): a
URL expires with its transfer, and only the transfer's own call counts, whichever carrier signed the body.
test_review_telnyx_warm.py attacks the Telnyx routes; these hold the rules the two carriers share."""

from __future__ import annotations

import asyncio
import time

import httpx

from dispatcher.phone.twilio_warm import KEPT_SECONDS, callback_token, record_key
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import OTHER_CALL, post, signed
from tests.dispatcher.phone.test_twilio_warm import Setup, consult_call, refused, setup, warm  # noqa: F401
from tests.fakes.twilio import AUTH_TOKEN
from tests.fakes.twilio_outbound import sign

telnyx = on_telnyx.telnyx  # the Telnyx fixtures, by the names the tests ask for
telnyx_setup = on_telnyx.setup


async def test_a_status_url_older_than_its_transfer_can_live_is_refused_as_expired(
        telnyx_setup: on_telnyx.Setup) -> None:
    """The URL's MAC binds its creation time: a URL kept in a log is no use once its transfer is over."""
    on = telnyx_setup
    key = on.app.state.voicefleet.phone.settings.token_key
    old = int(time.time() - KEPT_SECONDS - 5)
    token = callback_token(key, "telnyx", "s-warm", "a" * 32, old, on_telnyx.DESK, "+14155550199")
    body, headers = signed(on.telnyx, {
        "AccountSid": on.telnyx.account_sid, "CallSid": OTHER_CALL, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": "+14155550199", "To": on_telnyx.DESK})
    answered = await post(on.app, f"{on_telnyx.PUBLIC}/phone/telnyx/warm/s-warm/{'a' * 32}/{token}/status", body,
                          headers)
    assert (answered.status_code, answered.json()["error"]["code"]) == (403, "callback_expired"), answered.text


async def test_another_twilio_call_s_body_at_the_status_url_is_ignored_and_never_ended(
        setup: Setup) -> None:  # noqa: F811
    """Twilio signs the URL as well, but a body of another call at the create's URL (first, before the person's
    own callbacks) is still no call of this transfer, its numbers not the create's: ignored (204), so once the
    transfer is given up its next body ends nothing, and the give-up ends the person's call only."""
    other = setup.twilio.live_call("CA" + "7" * 32)
    task = warm(setup)
    person = await consult_call(setup.twilio)
    status_url = person.one("StatusCallback") or ""

    async def other_says(sequence: str) -> httpx.Response:
        form = {"AccountSid": setup.twilio.account_sid, "CallSid": other.sid, "CallStatus": "in-progress",
                "CallbackSource": "call-progress-events", "From": other.sender, "To": other.to,
                "SequenceNumber": sequence}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as client:
            return await client.post(status_url, data=form, headers={
                "X-Twilio-Signature": sign(AUTH_TOKEN, status_url, list(form.items()))})

    assert (await other_says("0")).status_code == 204
    assert all(a.status_code == 204 for a in await setup.twilio.ring(person.sid))
    setup.caller.status = "completed"
    assert not setup.transfers.heard_hang_up(setup.call, time.time(), "stop")
    setup.transfers.closed(setup.call)
    error = await refused(task)
    assert (error.status, error.code) == (409, "call_over")
    assert person.status == "canceled"
    assert (await other_says("1")).status_code == 204  # the given-up transfer's URL, another body of that call
    assert other.status == "in-progress", "the transfer ended a call that was never its own"


async def test_the_person_s_own_status_body_replayed_at_the_briefed_url_is_refused_before_it_marks_them_briefed(
        telnyx_setup: on_telnyx.Setup) -> None:
    """Telnyx signs the body, not the URL: the person's `answered` status body, heard at the status URL, is as well
    signed at `briefed`. Refused there by its `CallbackSource`, it must not mark the transfer briefed (the caller
    would be joined while the person still hears the briefing)."""
    on = telnyx_setup
    task = on_telnyx.warm(on)
    person = await on_telnyx.consult_call(on.telnyx)
    status_url = on.telnyx.documents[0]["StatusCallback"]
    briefed_url, transfer = status_url.removesuffix("/status") + "/briefed", status_url.split("/")[-3]
    person.status = "in-progress"
    body, headers = signed(on.telnyx, {
        "AccountSid": on.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": person.one("From") or "", "To": person.one("To") or ""})
    assert (await post(on.app, status_url, body, headers)).status_code == 204  # the person answered
    replayed = await post(on.app, briefed_url, body, headers)
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (403, "callback_not_briefing"), replayed.text
    records = on.app.state.voicefleet.phone.telnyx_warm._records  # noqa: SLF001 (the transfer's store records)
    assert await records.held(record_key(transfer, "outcome")) is None, "a replayed body marked the person briefed"
    await on.telnyx.brief(person.sid)  # the briefing's own `<Redirect>`: that one joins them
    answer = await asyncio.wait_for(task, on_telnyx.WAIT)
    assert answer["status"] == "transferred"


async def test_the_person_s_final_completed_after_the_window_is_answered_204_and_acts_on_nothing(
        telnyx_setup: on_telnyx.Setup) -> None:
    """A joined call ends long after its transfer's two minutes: its last status callback is the normal end of a
    call, so a 403 would log an error in the carrier's debugger. Answered 204, with nothing recorded or ended; any
    other late callback is still 403 `callback_expired`."""
    on, transfer = telnyx_setup, "b" * 32
    key = on.app.state.voicefleet.phone.settings.token_key
    token = callback_token(key, "telnyx", "s-warm", transfer, int(time.time() - KEPT_SECONDS - 5), on_telnyx.DESK,
                           "+14155550199")
    url = f"{on_telnyx.PUBLIC}/phone/telnyx/warm/s-warm/{transfer}/{token}"

    async def says(status: str, what: str = "status") -> httpx.Response:
        source = {"CallbackSource": "call-progress-events"} if what == "status" else {}  # a `<Redirect>`'s: none
        return await post(on.app, f"{url}/{what}", *signed(on.telnyx, {
            "AccountSid": on.telnyx.account_sid, "CallSid": OTHER_CALL, "CallStatus": status,
            "From": "+14155550199", "To": on_telnyx.DESK, **source}))

    ended = await says("completed")
    assert ended.status_code == 204, ended.text
    records = on.app.state.voicefleet.phone.telnyx_warm._records  # noqa: SLF001 (the transfer's store records)
    assert await records.held(record_key(transfer, "sid")) is None and not on.telnyx.calls_to("POST", "/Calls/")
    for late in (await says("in-progress"), await says("completed", "briefed")):
        assert (late.status_code, late.json()["error"]["code"]) == (403, "callback_expired"), late.text


async def test_a_twilio_final_completed_after_the_window_is_answered_204(setup: Setup) -> None:  # noqa: F811
    """The same on Twilio's route, whose signature covers the URL."""
    key = setup.app.state.voicefleet.phone.settings.token_key
    token = callback_token(key, "twilio", "s-warm", "c" * 32, int(time.time() - KEPT_SECONDS - 5), on_telnyx.DESK,
                           "+14155550199")
    url = f"{on_telnyx.PUBLIC}/phone/twilio/warm/s-warm/{'c' * 32}/{token}/status"
    answers = []
    for status in ("completed", "ringing"):
        form = {"AccountSid": setup.twilio.account_sid, "CallSid": "CA" + "8" * 32, "CallStatus": status,
                "From": "+14155550199", "To": on_telnyx.DESK}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as client:
            answers.append(await client.post(url, data=form, headers={
                "X-Twilio-Signature": sign(AUTH_TOKEN, url, list(form.items()))}))
    assert [a.status_code for a in answers] == [204, 403], [a.text for a in answers]


async def test_a_telnyx_body_that_is_no_status_callback_is_not_kept_at_the_status_url(
        telnyx_setup: on_telnyx.Setup) -> None:
    """Telnyx signs all of a call's bodies with one key: the person's own `<Redirect>` body (no `CallbackSource`)
    saying `in-progress`, posted at the status URL, must not record the call answered (the waiting replica would
    then join a person who never heard the briefing once its time is up)."""
    on = telnyx_setup
    task = on_telnyx.warm(on)
    person = await on_telnyx.consult_call(on.telnyx)
    status_url = on.telnyx.documents[0]["StatusCallback"]
    transfer = status_url.split("/")[-3]
    taken = await post(on.app, status_url, *signed(on.telnyx, {
        "AccountSid": on.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
        "From": person.one("From") or "", "To": person.one("To") or ""}))
    assert taken.status_code == 204, taken.text
    records = on.app.state.voicefleet.phone.telnyx_warm._records  # noqa: SLF001 (the transfer's store records)
    assert await records.held(record_key(transfer, "answered")) is None
    assert await records.held(record_key(transfer, "sid")) is None
    assert all(a.status_code == 204 for a in await on.telnyx.finish(person.sid, "no-answer"))
    error = await on_telnyx.refused(task)
    assert (error.status, error.code) == (409, "person_unanswered")
