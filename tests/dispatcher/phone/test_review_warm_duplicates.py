"""Hostile review of the warm `briefed` route under Telnyx's own duplicates (dispatcher/api/routers/twilio_warm.py
`briefed_answer`, reached from routers/telnyx_warm.py). Telnyx documents that "identical webhooks may occasionally
be delivered" (developers.telnyx.com/docs/voice/programmable-voice/command-retries) and that it re-sends a webhook
its application did not answer in time, so duplicates arrive simultaneously. Two copies of the briefing's
`<Redirect>` both read the replay mark unseen, both decide the transfer, and the one that spends second is refused
`403 replayed`: when that is the copy Telnyx still waits on, the person's call gets no TeXML (it ends) while the
transfer is decided briefed and the caller is joined to an empty room. The strict Telnyx fake signs the bodies;
the interleaving is pinned by holding each claim's answer (the replay mark's `first_use`) until the test lets it
go (the records answer as they are: nothing is stood in for them). Both copies now get the conference: the first
to claim decides, the other is answered the recorded decision."""

from __future__ import annotations

import asyncio

from dispatcher.store.coordination import ReleasableOnce
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed

telnyx, setup = on_telnyx.telnyx, on_telnyx.setup  # the fixtures, by the names the tests ask for


class HeldAfterClaiming:
    """A replica's webhook records as they are, except that each of the first `holds` claims' answers is held
    back until the test lets it go (`held[n].set()`): that request has claimed (or lost) and not yet acted."""

    def __init__(self, inner: ReleasableOnce, holds: int = 1) -> None:
        self._inner, self._holds = inner, holds
        self.held: list[asyncio.Event] = []
        self.looked = asyncio.Event()  # set whenever another answer is held

    async def first_use(self, what: str, seconds: float) -> bool:
        answer = await self._inner.first_use(what, seconds)
        if len(self.held) < self._holds:
            go = asyncio.Event()
            self.held.append(go)
            self.looked.set()
            await asyncio.wait_for(go.wait(), on_telnyx.WAIT)
        return answer

    async def release(self, what: str) -> None:
        await self._inner.release(what)

    async def holding(self, count: int) -> None:
        async with asyncio.timeout(on_telnyx.WAIT):
            while len(self.held) < count:
                self.looked.clear()
                await self.looked.wait()


async def test_a_duplicate_briefing_delivered_alongside_the_first_gets_the_same_conference(
        setup: on_telnyx.Setup) -> None:
    task = on_telnyx.warm(setup)
    person = await on_telnyx.consult_call(setup.telnyx)
    assert all(a.status_code == 204 for a in await setup.telnyx.answer(person.sid))
    person.status = "in-progress"
    briefed_url = setup.telnyx.documents[0]["StatusCallback"].removesuffix("/status") + "/briefed"
    body, headers = signed(setup.telnyx, {
        "AccountSid": setup.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
        "From": person.one("From") or "", "To": person.one("To") or ""})  # a `<Redirect>`'s: no CallbackSource
    phone = setup.app.state.voicefleet.phone
    held = phone.webhooks = HeldAfterClaiming(phone.webhooks, holds=2)
    first = asyncio.create_task(post(setup.app, briefed_url, body, headers))
    await held.holding(1)
    again = asyncio.create_task(post(setup.app, briefed_url, body, headers))  # Telnyx's re-send, the first slow
    await held.holding(2)
    held.held[0].set()
    answers = [await asyncio.wait_for(first, on_telnyx.WAIT)]
    held.held[1].set()
    answers.append(await asyncio.wait_for(again, on_telnyx.WAIT))
    ended = await asyncio.gather(asyncio.wait_for(task, on_telnyx.WAIT), return_exceptions=True)
    assert [a.status_code for a in answers] == [200, 200], (
        f"{[a.text for a in answers]}; meanwhile the transfer ended: {ended[0]!r}")
    assert all("<Conference" in a.text for a in answers)
