"""Hostile review of the warm `briefed` route's order (dispatcher/api/routers/twilio_warm.py `briefed_answer`): it
used to read the replay mark, claim the transfer's outcome `briefed` in the store, then spend the mark, so a store
failing at that last write answered the `<Redirect>` 503 although the transfer was decided: Twilio does not retry a
503 by default (its Connection Overrides: retries follow `rc`/`rp`, and the URL handed out carries no `#rp=`
fragment), so the person's call ended on an application error and the caller was moved into a room nobody joined.
The mark is now claimed first: a store failing at the claim is a 503 with nothing decided, the only one. The strict
Twilio fake plays the person (tests/fakes/twilio_outbound.py); the store's failure is injected at the claim alone."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from dispatcher.phone.twilio_warm import record_key
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import ReleasableOnce
from tests.dispatcher.phone.test_twilio_warm import Setup, consult_call, setup, warm  # noqa: F401
from tests.fakes.twilio import AUTH_TOKEN
from tests.fakes.twilio_outbound import sign


class ClaimFails:
    """The webhook records as they are, except that claiming one does not reach the store."""

    def __init__(self, inner: ReleasableOnce) -> None:
        self._inner = inner

    async def first_use(self, what: str, seconds: float) -> bool:
        raise StoreUnavailable("injected: the store did not answer the claim")

    async def release(self, what: str) -> None:
        await self._inner.release(what)


async def test_a_briefing_whose_spend_fails_is_not_answered_503_once_the_transfer_is_decided(
        setup: Setup) -> None:  # noqa: F811
    task = warm(setup)
    person = await consult_call(setup.twilio)
    assert all(a.status_code == 204 for a in await setup.twilio.answer(person.sid))
    redirect = ET.fromstring(person.one("Twiml") or "").findtext("Redirect") or ""  # noqa: S314 (our own TwiML)
    transfer = redirect.split("/")[-3]
    phone = setup.app.state.voicefleet.phone
    phone.webhooks = ClaimFails(phone.webhooks)
    form = {"AccountSid": setup.twilio.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
            "From": person.sender, "To": person.to}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as client:
        answered = await client.post(redirect, data=form, headers={
            "X-Twilio-Signature": sign(AUTH_TOKEN, redirect, list(form.items()))})
    outcome = await phone.twilio_warm._records.held(record_key(transfer, "outcome"))  # noqa: SLF001
    if (answered.status_code, outcome) == (503, "briefed"):  # the fault: say how the transfer then ended
        ended = await asyncio.gather(asyncio.wait_for(task, 20.0), return_exceptions=True)
        pytest.fail(f"the <Redirect> was refused 503 after the transfer was decided; the transfer then ended: "
                    f"{ended[0]!r}")
    # Nothing decided: the transfer would wait out the briefing's deadline, which is not this test's claim.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (answered.status_code, answered.json()["error"]["code"], outcome) == (503, "store_unavailable", None)


class OutcomeLandsUnanswered:
    """The transfer's records as they are, except that the outcome's write lands and its answer is lost (a SET
    that timed out after the store took it)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def first(self, what: str, value: str, seconds: float) -> str:
        answer = await self._inner.first(what, value, seconds)
        if what.endswith(":outcome"):
            raise StoreUnavailable("injected: the outcome's answer was lost after it landed")
        return answer


async def test_a_briefing_whose_outcome_landed_unanswered_gets_the_conference(setup: Setup) -> None:  # noqa: F811
    task = warm(setup)
    person = await consult_call(setup.twilio)
    assert all(a.status_code == 204 for a in await setup.twilio.answer(person.sid))
    redirect = ET.fromstring(person.one("Twiml") or "").findtext("Redirect") or ""  # noqa: S314 (our own TwiML)
    phone = setup.app.state.voicefleet.phone
    phone.twilio_warm._records = OutcomeLandsUnanswered(phone.twilio_warm._records)  # noqa: SLF001
    form = {"AccountSid": setup.twilio.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
            "From": person.sender, "To": person.to}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as client:
        answered = await client.post(redirect, data=form, headers={
            "X-Twilio-Signature": sign(AUTH_TOKEN, redirect, list(form.items()))})
    ended = await asyncio.gather(asyncio.wait_for(task, 20.0), return_exceptions=True)
    assert answered.status_code == 200 and "<Conference" in answered.text, (answered.text, ended[0])
