"""A warm transfer of a Plivo call: the dispatcher in-process, Plivo a strict fake on a real port (tests/fakes/
plivo.py) playing the person: the consult call made through Plivo's Call API (its 201 names no call), its
ring, answer, `<Redirect>` and hangup callbacks signed with X-Plivo-Signature-V3 as Plivo signs them and sent
to the app, the caller's call transferred into the room through a one-time URL."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.plivo_transfer_url import claim_key, dead_key, ticket_mac, transfer_url
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import LiveCall, Transfers
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import PUBLIC
from tests.dispatcher.phone.test_telnyx_warm import refused, warm
from tests.dispatcher.phone.test_twilio_warm import DESK, SUMMARY, WAIT, Bot
from tests.fakes.plivo import FakePlivo, PlacedCall, PlivoCall, v3_signature
from tests.fakes.server import serve

CALLER = str(uuid.UUID(int=0xC))  # the caller's CallUUID, as Plivo's signed answer URL named it
SAID_BY = "+14155550199"  # the number the caller reached: the person's caller id


class OnTheTestLoop(httpx.AsyncBaseTransport):
    """The app reached from the fake's own thread (its fetch after a transfer's 202) on the loop that runs the
    app, as a real Plivo reaches a real dispatcher over the network."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi, self._loop = httpx.ASGITransport(app=app), loop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def on_loop() -> httpx.Response:
            content = await request.aread()
            answer = await self._asgi.handle_async_request(httpx.Request(request.method, request.url,
                                                                         headers=request.headers, content=content))
            return httpx.Response(answer.status_code, headers=answer.headers, content=await answer.aread())

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_loop(), self._loop))


@dataclass
class Setup:
    transfers: Transfers
    call: LiveCall
    caller: PlivoCall
    bot: Bot
    plivo: FakePlivo
    app: Any


@pytest.fixture
def plivo() -> Iterator[FakePlivo]:
    with serve(FakePlivo(max_per_second=1000)) as fake:
        yield fake


@pytest.fixture
async def setup(plivo: FakePlivo) -> AsyncIterator[Setup]:
    async with running(plivo, {**plivo.env(), "PHONE_PUBLIC_URL": PUBLIC, "PHONE_TRANSFER_TARGETS": DESK}) as one:
        yield one


@contextlib.asynccontextmanager
async def running(plivo: FakePlivo, env: dict[str, str]) -> AsyncIterator[Setup]:
    """The dispatcher in-process with `env`, a caller's Plivo call open on it, the bot's channel stood in."""
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    loop = asyncio.get_running_loop()
    plivo.deliver = lambda: httpx.AsyncClient(transport=OnTheTestLoop(app, loop))
    phone = app.state.voicefleet.phone
    bot = Bot()
    assert phone.plivo_warm is not None
    phone.plivo_warm._ask_bot = bot.ask  # noqa: SLF001 (the bot's channel, as test_twilio_warm.py stands it in)
    caller = plivo.live_call(CALLER, to_number=SAID_BY)
    call = phone.transfers.opened("s-warm", "plivo", CALLER, [])
    try:
        yield Setup(phone.transfers, call, caller, bot, plivo, app)
    finally:
        plivo.reset_knobs()
        await app.state.voicefleet.aclose()


async def consult_call(plivo: FakePlivo) -> PlacedCall:
    async with asyncio.timeout(WAIT):
        while not plivo.placed:
            await asyncio.sleep(0.02)
    return plivo.placed[0]


def deleted(plivo: FakePlivo, person: PlacedCall) -> int:
    return len(plivo.calls_to("DELETE", person.uuid))


async def test_the_person_hears_the_summary_in_plivo_s_voice_then_both_calls_are_in_one_conference(
        setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    made = person.document
    assert (made["to"], made["from"], made["ring_timeout"], made["time_limit"]) == (DESK[1:], SAID_BY[1:], 12, 3600)
    assert made["answer_url"].startswith(f"{PUBLIC}/phone/plivo/warm/s-warm/")
    assert made["ring_url"] == made["hangup_url"] != made["answer_url"]
    assert all(a.status_code == 204 for a in await setup.plivo.ring(person.uuid))
    answers = await setup.plivo.answer(person.uuid)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    async with asyncio.timeout(WAIT):
        answer = await task
    assert answer["status"] == "transferred" and answer["carrier"] == "plivo" and answer["carrier_status"] == "warm"
    assert person.said == [SUMMARY]
    assert await asyncio.to_thread(setup.caller.redirected.wait, WAIT)  # Plivo fetches after its 202
    rooms = [room for room in setup.plivo.conferences.values() if room == {person.uuid, CALLER}]
    assert len(rooms) == 1, setup.plivo.conferences
    assert setup.bot.asked == [("call.warm_transfer", {"event": "ringing", "to": DESK})]
    assert 'timeLimit="3600"' in setup.caller.xml[0] and deleted(setup.plivo, person) == 0


async def test_without_a_summary_the_person_hears_the_bot_s_own_line(setup: Setup) -> None:
    task = warm(setup, summary=None)
    person = await consult_call(setup.plivo)
    await setup.plivo.answer(person.uuid)
    async with asyncio.timeout(WAIT):
        await task
    assert person.said == [setup.bot.line]


@pytest.mark.parametrize(("status", "code"), [("no-answer", "person_unanswered"), ("timeout", "person_unanswered"),
                                              ("busy", "person_busy")])
async def test_a_person_who_does_not_answer_leaves_the_caller_with_the_bot_which_is_told(
        setup: Setup, status: str, code: str) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    await setup.plivo.ring(person.uuid)
    assert all(a.status_code == 204 for a in await setup.plivo.finish(person.uuid, status))
    error = await refused(task)
    assert (error.status, error.code) == (409, code)
    assert setup.caller.xml == [] and setup.caller.live  # untouched: still with the bot
    assert not setup.call.transferring and setup.call.transferred is None
    async with asyncio.timeout(WAIT):
        while len(setup.bot.asked) < 2:
            await asyncio.sleep(0.02)
    assert setup.bot.asked[-1] == ("call.warm_transfer", {"event": "failed", "reason": code})


async def test_the_person_hanging_up_during_the_briefing_is_person_left(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    setup.plivo.speak_only = True  # the answer's XML run, its `<Redirect>` not yet
    await setup.plivo.answer(person.uuid)
    await setup.plivo.finish(person.uuid, "completed")
    error = await refused(task)
    assert (error.status, error.code) == (409, "person_left")
    assert setup.caller.xml == [] and setup.plivo.conferences == {}


async def test_a_create_whose_answer_was_lost_is_ended_once_its_own_callback_names_it(setup: Setup) -> None:
    setup.plivo.answer_create_with(504)  # Plivo placed the call; its answer never came back
    error = await refused(warm(setup))
    assert (error.status, error.code) == (503, "carrier_unavailable")
    person = setup.plivo.placed[0]
    assert person.status == "queued" and deleted(setup.plivo, person) == 0  # nothing named it yet: no guess
    assert all(a.status_code == 204 for a in await setup.plivo.ring(person.uuid))  # its callback, late
    assert await FakePlivo.eventually(lambda: person.status == "cancel", timeout=WAIT)  # given up: DELETEd
    assert deleted(setup.plivo, person) == 1


async def test_a_caller_who_hangs_up_while_the_person_rings_is_call_over_and_the_person_s_call_ended(
        setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    await setup.plivo.ring(person.uuid)
    setup.caller.live = False
    assert not setup.transfers.heard_hang_up(setup.call, time.time(), "stop")  # held: a transfer is under way
    setup.transfers.closed(setup.call)
    try:
        error = await refused(task)
        assert (error.status, error.code) == (409, "call_over")
        assert await FakePlivo.eventually(lambda: person.status == "cancel", timeout=WAIT), person.status
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await task


async def test_callbacks_not_signed_by_plivo_or_for_another_transfer_are_refused(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    answer_url = person.document["answer_url"]
    form = {"CallUUID": person.uuid, "RequestUUID": person.request_uuid, "From": SAID_BY[1:], "To": DESK[1:],
            "CallStatus": "in-progress", "Direction": "outbound", "Event": "StartApp"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as api:
        unsigned = await api.post(answer_url, data=form)
        assert unsigned.status_code == 403, unsigned.text
        forged = await api.post(answer_url, data=form, headers={"X-Plivo-Signature-V3": "AAAA",
                                                                "X-Plivo-Signature-V3-Nonce": "1"})
        assert forged.status_code == 403, forged.text
    # Signed by Plivo, but at another session's URL: the MAC names the session and the transfer.
    other = await setup.plivo.signed_post(answer_url.replace("/s-warm/", "/s-other/"), form)
    assert other.status_code == 403 and "callback_forged" in other.text
    # Signed, at the right URL, but not the numbers the create called: not this transfer's call.
    elsewhere = await setup.plivo.signed_post(answer_url, {**form, "To": "14155550777"})
    assert elsewhere.status_code == 200 and "<Hangup/>" in elsewhere.text and "Speak" not in elsewhere.text
    signed = await setup.plivo.signed_post(answer_url, form)
    assert signed.status_code == 200 and re.search(r"<Speak>[^<]+</Speak><Redirect", signed.text), signed.text
    replayed = await setup.plivo.signed_post(answer_url, form)  # a new nonce: claimed once as a body, answered
    assert replayed.status_code == 200
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task


async def test_a_warm_transfer_needs_the_public_url_the_person_s_call_reports_to(plivo: FakePlivo) -> None:
    async with running_without_public_url(plivo) as (transfers, call):
        with pytest.raises(ApiError) as caught:
            await transfers.transfer(call, TransferTarget(DESK, "warm", SUMMARY))
        assert (caught.value.status, caught.value.code) == (409, "transfer_not_configured")
        assert "PHONE_PUBLIC_URL" in caught.value.message and not plivo.placed


@contextlib.asynccontextmanager
async def running_without_public_url(plivo: FakePlivo) -> AsyncIterator[tuple[Transfers, LiveCall]]:
    app = create_app(Settings(), env={**plivo.env(), "PHONE_TRANSFER_TARGETS": DESK},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    try:
        plivo.live_call(CALLER)
        transfers = app.state.voicefleet.phone.transfers
        yield transfers, transfers.opened("s-none", "plivo", CALLER, [])
    finally:
        await app.state.voicefleet.aclose()


async def test_a_person_still_hearing_the_briefing_when_the_wait_ends_is_moved_to_the_room(setup: Setup) -> None:
    """As the SIP edge bridges once its briefing's time is up: the person's call is transferred to the room
    through a one-time URL, as the caller's is."""
    warm_transfer = setup.app.state.voicefleet.phone.plivo_warm
    until = asyncio.get_running_loop().time() + 1.5
    task = asyncio.create_task(warm_transfer.consult(CALLER, "s-warm", TransferTarget(DESK, "warm", SUMMARY), 3600,
                                                     until))
    person = await consult_call(setup.plivo)
    setup.plivo.speak_only = True  # the briefing is still being said when the wait ends
    assert [a.status_code for a in await setup.plivo.answer(person.uuid)] == [200]
    async with asyncio.timeout(WAIT):
        consulted = await task
    assert consulted.sid == person.uuid
    room = f"vf-warm-{consulted.transfer}"
    assert await FakePlivo.eventually(lambda: setup.plivo.conferences.get(room) == {person.uuid}, timeout=WAIT), (
        setup.plivo.conferences)
    (moved,) = setup.plivo.calls_to("POST", person.uuid)
    assert moved.json()["aleg_url"].startswith(f"{PUBLIC}/phone/plivo/transfer/")


async def test_a_person_s_move_given_up_hangs_their_call_up_when_plivo_fetches_it_late(setup: Setup) -> None:
    """A one-time URL of no session (a person's move to the room) that is dead when fetched: never a bot's."""
    phone = setup.app.state.voicefleet.phone
    person = str(uuid.uuid4())
    room = "<Response><Conference>r</Conference></Response>"
    path = transfer_url(phone.settings.token_key, "", person, None, 0, room)
    mac = ticket_mac(path)
    assert await phone.webhooks.first_use(claim_key(mac), 120)  # the give-up's claim came first
    assert await phone.webhooks.first_use(dead_key(mac), 120)
    form = {"CallUUID": person, "From": SAID_BY[1:], "To": DESK[1:], "CallStatus": "in-progress",
            "Direction": "outbound"}
    late = await setup.plivo.signed_post(PUBLIC + path, form)
    assert late.status_code == 200 and "<Hangup/>" in late.text and "<Stream" not in late.text, late.text


async def test_a_copy_of_the_answer_fetch_gets_the_same_briefing_and_a_forged_call_s_a_hang_up(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.plivo)
    answer_url = person.document["answer_url"]
    form = {"CallUUID": person.uuid, "RequestUUID": person.request_uuid, "From": SAID_BY[1:], "To": DESK[1:],
            "CallStatus": "in-progress", "Direction": "outbound", "Event": "StartApp"}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Plivo-Signature-V3-Nonce": "12345",
               "X-Plivo-Signature-V3": v3_signature(setup.plivo.auth_token, answer_url, "12345", form)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app)) as api:
        first = await api.post(answer_url, content=urlencode(form), headers=headers)
        copy = await api.post(answer_url, content=urlencode(form), headers=headers)  # the very same request
    assert first.status_code == copy.status_code == 200 and SUMMARY in first.text and copy.text == first.text
    other = {**form, "CallUUID": str(uuid.uuid4())}  # the right numbers, another call: not the transfer's
    answered = await setup.plivo.signed_post(answer_url, other)
    assert answered.status_code == 200 and "<Hangup/>" in answered.text and SUMMARY not in answered.text
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task
