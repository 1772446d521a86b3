"""A hostile review of the Telnyx warm transfer (dispatcher/phone/telnyx_warm.py, api/routers/telnyx_warm.py).

Each test is a finding: it failed on the code as merged (each was a strict xfail then) and passes since its
fix. They reuse tests/dispatcher/phone/test_telnyx_warm.py's setup: the dispatcher in-process,
Telnyx the strict fake on a real port (tests/fakes/telnyx_outbound.py), its callbacks Ed25519-signed as Telnyx
signs them (https://developers.telnyx.com/api-reference/callbacks/texml-call-initiated: `telnyx-signature-ed25519`
over `{telnyx-timestamp}|{body}`, the URL not covered).

Telnyx's create answers `{from, status, to}` alone (its SDKs' `CallCallsResponse`), so the consult call is known
only from the signed callbacks its URL receives: what those callbacks may claim is what these tests attack.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone import test_telnyx_warm as merged
from tests.dispatcher.phone.test_telnyx_warm import Setup, consult_call, refused, warm
from tests.fakes.telnyx_outbound import FakeTelnyxCalls

ANOTHER_ACCOUNT = "0b5b2f3c-1111-4222-8333-944455556666"  # well formed (dispatcher/phone/telnyx_ids.py), not ours
OTHER_CALL = "v3:" + "o" * 40  # another live call of the account: a customer's, say
ACTS_SECONDS = 5.0  # 25 of the transfer's polls (twilio_warm.py POLL_SECONDS): generous on a busy machine
telnyx, setup = merged.telnyx, merged.setup  # the merged tests' fixtures, by the names the tests ask for


def signed(fake: FakeTelnyxCalls, form: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A body as Telnyx signs it, with its headers (the signature covers the body and timestamp, not the URL)."""
    body = urlencode(form).encode()
    sent = str(int(time.time()))
    signature = base64.b64encode(fake.signer.sign(sent.encode() + b"|" + body)).decode()
    return body, {"Content-Type": "application/x-www-form-urlencoded", "telnyx-signature-ed25519": signature,
                  "telnyx-timestamp": sent}


async def post(app: Any, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await client.post(url, content=body, headers=headers)


def caller_hangs_up(setup: Setup) -> None:
    setup.caller.status = "completed"
    assert not setup.transfers.heard_hang_up(setup.call, time.time(), "stop")  # held: a transfer is under way
    setup.transfers.closed(setup.call)


async def test_a_person_briefed_before_their_status_callbacks_is_not_left_alone_in_the_room(setup: Setup) -> None:
    """The `<Redirect>` reaches the dispatcher before any status callback named the call (they are late, or the
    store refused them: Telnyx's create names no call). The caller then hangs up. The person, already answered
    `<Dial><Conference>`, must not be left waiting in an empty room: their call is ended, by the id the
    `<Redirect>` itself was signed with, or by the status callbacks' once they come."""
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    person.status = "in-progress"  # answered; its `answered` callback not here yet
    await setup.telnyx.brief(person.sid)
    assert any(room == {person.sid} for room in setup.telnyx.conferences.values()), setup.telnyx.conferences
    caller_hangs_up(setup)
    error = await refused(task)
    assert (error.status, error.code) == (409, "call_over")
    # The late status callbacks now name the call: the transfer is over, nobody will join the person.
    assert all(a.status_code == 204 for a in await setup.telnyx.answer(person.sid))
    assert person.status == "completed", "the person is alone in the conference of a transfer that was given up"


async def test_a_signed_callback_of_another_call_at_the_status_url_is_never_taken_for_the_person_s_call(
        setup: Setup) -> None:
    """Telnyx signs the body, not the URL (the routes' docstrings say so): a status callback Telnyx signed for
    another call of the account, posted first at this transfer's status URL, names that call. When the transfer
    is then given up (the caller hangs up), the dispatcher must end the person's call, never that other one."""
    other = setup.telnyx.live_call(OTHER_CALL)
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": other.sid, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": other.sender, "To": other.to})
    taken = await post(setup.app, status_url, body, headers)
    assert all(a.status_code == 204 for a in await setup.telnyx.ring(person.sid))  # the person's own callbacks
    caller_hangs_up(setup)
    error = await refused(task)
    assert (error.status, error.code) == (409, "call_over")
    assert other.status == "in-progress", f"the transfer ended a call that was never its own ({taken.status_code})"
    assert person.status == "completed", "the person is still being called for nobody"


async def test_a_warm_callback_of_another_account_is_refused_as_the_placed_calls_route_refuses_it(
        setup: Setup) -> None:
    """The shared helper dropped the account check into the placed-call route alone: at the warm routes a signed
    body of another account's call is recorded as the transfer's call, and the hang-up then names that
    account's path (Telnyx: 404, taken as `gone`), so the person's real call is never ended."""
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    body, headers = signed(setup.telnyx, {
        "AccountSid": ANOTHER_ACCOUNT, "CallSid": person.sid, "CallStatus": "initiated",
        "CallbackSource": "call-progress-events", "From": person.one("From") or "", "To": person.one("To") or ""})
    answered = await post(setup.app, status_url, body, headers)
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001,S110 (cancelled, or refused: only the route's answer matters here)
        pass
    assert answered.status_code == 400, (answered.status_code, answered.text)


class StoreRefusesOnce:
    """The transfer's records (FirstClaims) whose first write of a call's id fails, as a store blip does."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.refused = inner, False

    async def first(self, what: str, value: str, seconds: float) -> str:
        if what.endswith(":sid") and not self.refused:
            self.refused = True
            raise StoreUnavailable("injected: the store did not answer")
        result: str = await self._inner.first(what, value, seconds)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_status_callback_answered_503_is_taken_when_the_same_signed_body_comes_again(setup: Setup) -> None:
    """A 503 promises a retry will be heard; the retry of the same signed body (a redelivery, or the failover URL's)
    is refused as a replay instead, so the call's id is never known here (see the first test for what follows)."""
    warm_driver = setup.app.state.voicefleet.phone.telnyx_warm
    warm_driver._records = StoreRefusesOnce(warm_driver._records)  # noqa: SLF001 (the store blip, injected)
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "initiated",
        "CallbackSource": "call-progress-events", "From": person.one("From") or "", "To": person.one("To") or ""})
    first = await post(setup.app, status_url, body, headers)
    assert first.status_code == 503, first.text
    again = await post(setup.app, status_url, body, headers)
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001,S110 (cancelled: only the routes' answers matter here)
        pass
    assert again.status_code == 204, (again.status_code, again.text)


async def test_a_signed_body_of_another_call_at_the_briefed_url_never_marks_the_person_briefed(setup: Setup) -> None:
    """The same hole at the `<Redirect>`: another call's signed body at the briefed URL marks the transfer briefed
    while the person's phone still rings, so the caller is moved into the conference (`transferred`, the bot gone)
    and then waits alone in it when the person does not answer."""
    other = setup.telnyx.live_call(OTHER_CALL)
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    texml = setup.telnyx.documents[0]["Texml"]
    briefed_url = texml.split("<Redirect", 1)[1].split(">", 1)[1].split("</Redirect>", 1)[0].replace("&amp;", "&")
    assert all(a.status_code == 204 for a in await setup.telnyx.ring(person.sid))  # the person's phone rings
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": other.sid, "CallStatus": "in-progress",
        "From": other.sender, "To": other.to})
    marked = await post(setup.app, briefed_url, body, headers)
    assert marked.status_code == 200, marked.text
    # The transfer's next poll of its records (every POLL_SECONDS) acts on the mark; fixed, it waits on: go on.
    await asyncio.wait({task}, timeout=ACTS_SECONDS)
    assert all(a.status_code == 204 for a in await setup.telnyx.finish(person.sid, "no-answer"))
    try:
        error = await refused(task)
    except BaseException as exc:  # noqa: BLE001 (the transfer answered instead of refusing: the finding)
        raise AssertionError(f"the transfer did not refuse ({exc!r}): the caller was moved into the room "
                             f"({setup.caller.twiml}) though the person never answered") from None
    assert (error.status, error.code) == (409, "person_unanswered")
    assert setup.caller.twiml == [], "the caller was moved into a conference the person never joined"


async def test_an_old_transfer_s_status_url_never_ends_another_call_a_signed_body_names(setup: Setup) -> None:
    """No race needed: once a transfer is over (the person was busy), its status URL still takes any Telnyx-signed
    body, and for a given-up transfer ends the call that body names `in-progress`. The URL's MAC has no expiry, so
    whoever holds one old URL (an ingress log keeps paths whole) and one unspent signed body ends a live call."""
    other = setup.telnyx.live_call(OTHER_CALL)
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    status_url = setup.telnyx.documents[0]["StatusCallback"]
    assert all(a.status_code == 204 for a in await setup.telnyx.finish(person.sid, "busy"))
    error = await refused(task)
    assert (error.status, error.code) == (409, "person_busy")
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": other.sid, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": other.sender, "To": other.to})
    answered = await post(setup.app, status_url, body, headers)
    assert other.status == "in-progress", f"an old transfer's URL ended another live call ({answered.status_code})"
