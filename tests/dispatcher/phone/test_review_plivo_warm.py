"""A hostile review of the Plivo warm transfer (dispatcher/phone/plivo_warm.py, api/routers/plivo_warm.py).

Each test is a finding, a strict xfail on the code as merged until its fix landed: each now passes.
They reuse tests/dispatcher/phone/test_plivo_warm.py's setup: the dispatcher in-process, Plivo the strict fake
(tests/fakes/plivo.py) on a real port, its callbacks signed with X-Plivo-Signature-V3 as Plivo signs them
(plivo-python plivo/utils/signature_v3.py `construct_post_url`: the URL, `?`, the POST parameters sorted by key as
key + value, `.` and the nonce).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from dispatcher.errors import ApiError
from tests.dispatcher.phone import test_plivo_warm as merged
from tests.dispatcher.phone.test_plivo_warm import CALLER, SAID_BY, Setup, consult_call
from tests.dispatcher.phone.test_telnyx_warm import warm
from tests.dispatcher.phone.test_twilio_warm import SUMMARY, WAIT
from tests.fakes.plivo import FakePlivo, PlacedCall

plivo, setup = merged.plivo, merged.setup  # the merged tests' fixtures, by the names the tests ask for


async def test_a_plivo_call_whose_live_record_writes_its_number_without_a_plus_takes_a_warm_transfer(
        setup: Setup) -> None:
    """Plivo's "Retrieve a live call" writes `to` without the `+` (plivo-python's own fixture,
    tests/resources/fixtures/liveCallGetResponse.json: `"to": "919798990001"`), as its callbacks write `To`/`From`
    (which routers/plivo_warm.py `_e164` already puts back). twilio_warm.py `our_number` takes only `+E.164`, so a
    real inbound Plivo call's warm transfer is `409 warm_unsupported` and nobody is called; the fake's live call
    answers `+14155550199`, which is why the merged tests pass. Fix: normalise the live call's `to`/`from`
    (`PlivoCalls.fetch`: digits → `+digits`) and make the fake answer Plivo's spelling."""
    setup.caller.to_number = SAID_BY[1:]  # as Plivo's live call writes it
    task = warm(setup)
    try:
        person = await placed(setup, task)
        assert person.document["from"] == SAID_BY[1:]
    finally:
        await stopped(task)


async def test_a_caller_whose_person_left_before_plivo_fetched_the_room_is_not_left_alone_in_it(setup: Setup) -> None:
    """The person is briefed and joined; the request answers `transferred` on Plivo's 202, but Plivo fetches the
    caller's one-time URL after it (its queue: tests/fakes/plivo.py `fetch_late`). The person hangs up in that
    gap (their hangup_url says `completed`, heard and kept as the transfer's `ended`). `endConferenceOnExit`
    ended the room with them, so the caller's `<Conference>` opens a new, empty one of the same name: silence,
    billed on both legs, for up to its `timeLimit` (an hour), the bot's stream already closed and nobody watching.
    Plivo asks the dispatcher for the caller's XML, so it can know: the ticket route (webhooks.py
    `plivo_transfer_xml` → `Ticket.xml`) answers the room without reading the transfer's `ended` record. Fix: name
    the transfer in the ticket and, its person's call over, answer what a dead ticket gets (a bot again while the
    session lasts, else `<Hangup/>`), or give the room `stayAlone="false"` for the caller."""
    setup.plivo.fetch_late(CALLER, 3.0)  # Plivo's fetch of the caller's URL, queued after its 202
    task = warm(setup)
    person = await consult_call(setup.plivo)
    await setup.plivo.ring(person.uuid)
    assert [a.status_code for a in await setup.plivo.answer(person.uuid)] == [200, 200]
    async with asyncio.timeout(WAIT):
        assert (await task)["status"] == "transferred"
    assert all(a.status_code == 204 for a in await setup.plivo.finish(person.uuid, "completed"))  # they hang up
    caller = setup.caller
    assert await FakePlivo.eventually(lambda: bool(caller.xml or caller.refused or caller.streamed), timeout=WAIT)
    alone = [room for room, members in setup.plivo.conferences.items() if members == {CALLER}]
    assert alone == [], f"the caller waits alone in {alone}: {caller.xml}"


@pytest.mark.parametrize("hung_up", [True, False], ids=["call-over", "in-the-room"])
async def test_a_replayed_answer_fetch_does_not_read_the_briefing_once_the_person_s_call_is_over(
        setup: Setup, hung_up: bool) -> None:
    """The answer URL's briefing (the summary: it names the caller and why they call) is kept in the store for
    Plivo's fetch, and routers/plivo_warm.py answers a byte-identical copy of that fetch (same nonce, so the same
    V3 signature: the claim is taken) with the briefing again, so that Plivo's retry of a fetch whose answer it
    lost still briefs the person (Make a call: `fallback_url` is "invoked if answer_url fails after 3 retries").
    But `PlivoWarm.briefing` reads only the call's id and `abandoned`: the copy is served for the records' whole
    life (120 s), also once the transfer is done and the person's call is over, when no retry can be Plivo's.
    Whoever captured the request (a proxy's or WAF's log keeps the signature headers the dispatcher masks)
    reads the caller's details back, and the `<Redirect>` URL with its MAC. docs/phone.md says each request
    counts "once across replicas". Fix: serve a copy only while the call is answered, not ended and its outcome
    undecided; else 403 `replayed`."""
    sent: list[httpx.Request] = []  # what Plivo sent, as a log that keeps headers would
    loop = asyncio.get_running_loop()
    setup.plivo.deliver = lambda: httpx.AsyncClient(transport=Recording(merged.OnTheTestLoop(setup.app, loop), sent))
    task = warm(setup)
    person = await consult_call(setup.plivo)
    assert [a.status_code for a in await setup.plivo.answer(person.uuid)] == [200, 200]  # briefed, then the room
    async with asyncio.timeout(WAIT):
        assert (await task)["status"] == "transferred"
    if hung_up:
        await setup.plivo.finish(person.uuid, "completed")  # the call is over
    # else: briefed and in the room, its outcome decided: no retry of the answer fetch can come now either
    (fetch,) = [r for r in sent if str(r.url) == person.document["answer_url"]]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as api:
        replayed = await api.post(str(fetch.url), content=fetch.content, headers=dict(fetch.headers))
    assert SUMMARY not in replayed.text, replayed.text
    assert replayed.status_code == 403 and replayed.json()["error"]["code"] == "replayed", replayed.text


class Recording(httpx.AsyncBaseTransport):
    """A transport that keeps each request it carries."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sent: list[httpx.Request]) -> None:
        self._inner, self._sent = inner, sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self._sent.append(request)
        return await self._inner.handle_async_request(request)


async def placed(setup: Setup, task: asyncio.Task[Any]) -> PlacedCall:
    """The consult call Plivo was asked to make; the transfer's own refusal if it ended first."""
    async with asyncio.timeout(WAIT):
        while not setup.plivo.placed:
            if task.done():
                task.result()  # its ApiError: what the request answered
            await asyncio.sleep(0.02)
    return setup.plivo.placed[0]


async def stopped(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task
