"""The Telnyx warm transfer's callback routes (dispatcher/api/routers/telnyx_warm.py) on the paths a transfer
seldom takes: the store down at the briefing, a body naming no Telnyx call, Telnyx warm transfers off, and
TELNYX_ACCOUNT_SID unset. The setup is tests/dispatcher/phone/test_telnyx_warm.py's (the strict Telnyx fake on a
real port, its bodies Ed25519-signed as Telnyx signs them)."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.phone.twilio_warm import callback_token
from dispatcher.store.client import StoreUnavailable
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed
from tests.fakes.telnyx_outbound import FakeTelnyxCalls

telnyx, setup = on_telnyx.telnyx, on_telnyx.setup  # the fixtures, by the names the tests ask for
SENDER = "+14155550199"  # the number the caller reached: the consult call's `From`


class StoreGoesDown:
    """The transfer's records (FirstClaims) while the store does not answer (`down`), then as they were."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.down = inner, False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def answered(*args: Any) -> Any:
            if self.down:
                raise StoreUnavailable("injected: the store did not answer")
            return await method(*args)

        return answered


def the_person_s(setup: on_telnyx.Setup, status: str, **fields: str) -> dict[str, str]:
    person = setup.telnyx.placed[0]
    return {"AccountSid": setup.telnyx.account_sid, "CallSid": person.sid, "CallStatus": status,
            "From": person.one("From") or "", "To": person.one("To") or "", **fields}


async def test_a_briefing_the_store_cannot_record_is_503_and_its_retry_is_heard(setup: on_telnyx.Setup) -> None:
    warm = setup.app.state.voicefleet.phone.telnyx_warm
    records = warm._records = StoreGoesDown(warm._records)  # noqa: SLF001 (the store blip, injected)
    task = on_telnyx.warm(setup)
    person = await on_telnyx.consult_call(setup.telnyx)
    assert all(a.status_code == 204 for a in await setup.telnyx.answer(person.sid))
    briefed_url = setup.telnyx.documents[0]["StatusCallback"].removesuffix("/status") + "/briefed"
    body, headers = signed(setup.telnyx, the_person_s(setup, "in-progress"))
    records.down = True
    refused = await post(setup.app, briefed_url, body, headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "store_unavailable"), refused.text
    records.down = False
    heard = await post(setup.app, briefed_url, body, headers)  # Telnyx's retry of the same body: not a replay
    assert heard.status_code == 200 and "<Conference" in heard.text, heard.text
    answer = await asyncio.wait_for(task, on_telnyx.WAIT)
    assert answer["status"] == "transferred"


async def test_a_body_whose_call_sid_is_not_telnyx_s_is_400(setup: on_telnyx.Setup) -> None:
    task = on_telnyx.warm(setup)
    await on_telnyx.consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    malformed = the_person_s(setup, "ringing", CallSid="CA" + "1" * 32, CallbackSource="call-progress-events")
    answered = await post(setup.app, status_url, *signed(setup.telnyx, malformed))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (answered.status_code, answered.json()["error"]["code"]) == (400, "invalid_form"), answered.text
    assert "CallSid" in answered.json()["error"]["message"]


async def test_a_dispatcher_without_telnyx_warm_transfers_answers_their_callbacks_404(
        telnyx: FakeTelnyxCalls) -> None:
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": on_telnyx.PUBLIC, "TELNYX_APPLICATION_SID": ""}
    app = on_telnyx.create_app(on_telnyx.Settings(), env=env, machines=on_telnyx.LocalMachines(
        on_telnyx.LocalSettings()), rooms=None)
    try:
        assert app.state.voicefleet.phone.telnyx_warm is None
        key = app.state.voicefleet.phone.settings.token_key
        token = callback_token(key, "telnyx", "s-warm", "a" * 32, 1, on_telnyx.DESK, SENDER)
        body, headers = signed(telnyx, {"AccountSid": telnyx.account_sid, "CallSid": "v3:" + "p" * 40,
                                        "CallStatus": "ringing", "From": SENDER, "To": on_telnyx.DESK})
        answered = await post(app, f"{on_telnyx.PUBLIC}/phone/telnyx/warm/s-warm/{'a' * 32}/{token}/status", body,
                              headers)
    finally:
        await app.state.voicefleet.aclose()
    assert (answered.status_code, answered.json()["error"]["code"]) == (404, "not_found"), answered.text
    assert "Telnyx" in answered.json()["error"]["message"]


async def test_without_telnyx_account_sid_a_warm_transfer_takes_its_callbacks_of_any_account(
        telnyx: FakeTelnyxCalls) -> None:
    """TELNYX_ACCOUNT_SID is optional: unset, a callback's account is not checked (set, another's is 400)."""
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": on_telnyx.PUBLIC, "PHONE_TRANSFER_TARGETS": on_telnyx.DESK}
    del env["TELNYX_ACCOUNT_SID"]
    async with on_telnyx.running(telnyx, env) as unset:
        assert unset.app.state.voicefleet.phone.telnyx_warm.account is None
        task = on_telnyx.warm(unset)
        person = await on_telnyx.consult_call(telnyx)
        assert all(a.status_code == 204 for a in await telnyx.answer(person.sid))
        await telnyx.brief(person.sid)
        answer = await asyncio.wait_for(task, on_telnyx.WAIT)
    assert answer["status"] == "transferred" and person.said == [on_telnyx.SUMMARY]
