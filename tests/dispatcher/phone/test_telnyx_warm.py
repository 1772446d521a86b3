"""A warm transfer of a Telnyx call: the dispatcher in-process, Telnyx a strict fake on a real port
(tests/fakes/telnyx_outbound.py) playing the person: the consult call created through TeXML's Calls API
(JSON, no call SID in its answer), its status callbacks and its briefing's `<Redirect>` Ed25519-signed as
Telnyx signs them and sent to the app's ASGI transport, the caller's TeXML call updated into the room."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.telnyx_calls import TelnyxCalls
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import LiveCall, Transfers
from dispatcher.phone.twilio_calls import TwilioRefused
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import PUBLIC
from tests.dispatcher.phone.test_twilio_warm import DESK, SUMMARY, WAIT, Bot
from tests.fakes.server import serve
from tests.fakes.telnyx import API_KEY
from tests.fakes.telnyx_outbound import APPLICATION_SID, FakeTelnyxCalls, PlacedCall
from tests.fakes.twilio import FakeCall

CALLER = "v3:" + "c" * 40  # the caller's TeXML CallSid


@dataclass
class Setup:
    transfers: Transfers
    call: LiveCall
    caller: FakeCall
    bot: Bot
    telnyx: FakeTelnyxCalls
    app: Any


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


@pytest.fixture
async def setup(telnyx: FakeTelnyxCalls) -> AsyncIterator[Setup]:
    async with running(telnyx, {**telnyx.env(), "PHONE_PUBLIC_URL": PUBLIC, "PHONE_TRANSFER_TARGETS": DESK}) as one:
        yield one


@contextlib.asynccontextmanager
async def running(telnyx: FakeTelnyxCalls, env: dict[str, str]) -> AsyncIterator[Setup]:
    """The dispatcher in-process with `env`, a caller's Telnyx call open on it, the bot's channel stood in."""
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    telnyx.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    phone = app.state.voicefleet.phone
    bot = Bot()
    assert phone.telnyx_warm is not None
    phone.telnyx_warm._ask_bot = bot.ask  # noqa: SLF001 (the bot's channel, as test_twilio_warm.py stands it in)
    caller = telnyx.live_call(CALLER)
    # A Telnyx call's ids come from the token its signed webhook minted: `AccountSid/CallSid`.
    call = phone.transfers.opened("s-warm", "telnyx", f"{telnyx.account_sid}/{CALLER}", [])
    try:
        yield Setup(phone.transfers, call, caller, bot, telnyx, app)
    finally:
        telnyx.reset_knobs()
        await app.state.voicefleet.aclose()


async def consult_call(telnyx: FakeTelnyxCalls) -> PlacedCall:
    async with asyncio.timeout(WAIT):
        while not telnyx.placed:
            await asyncio.sleep(0.02)
    return telnyx.placed[0]


def warm(setup: Setup, summary: str | None = SUMMARY) -> asyncio.Task[dict[str, Any]]:
    return asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK, "warm", summary)))


async def refused(task: asyncio.Task[dict[str, Any]]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        async with asyncio.timeout(WAIT):
            await task
    return caught.value


def statuses_sent(telnyx: FakeTelnyxCalls) -> list[bytes]:
    """Every `Status=` an update of a call asked for (Telnyx documents `completed` alone)."""
    return [part for c in telnyx.calls_to("POST", "/Calls/") for part in c.body.split(b"&")
            if part.startswith(b"Status=")]


async def test_the_person_hears_the_summary_in_telnyx_s_voice_then_both_calls_are_in_one_conference(
        setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    document = setup.telnyx.documents[0]
    assert (document["ApplicationSid"], document["To"], document["From"]) == (APPLICATION_SID, DESK, "+14155550199")
    assert document["Timeout"] == 12 and document["TimeLimit"] == 3600
    assert document["StatusCallbackEvent"] == "initiated ringing answered completed"
    assert document["StatusCallback"].startswith(f"{PUBLIC}/phone/telnyx/warm/s-warm/")
    assert all(a.status_code == 204 for a in await setup.telnyx.answer(person.sid))
    assert setup.caller.twiml == []  # the caller is still with the bot while the person hears the briefing
    await setup.telnyx.brief(person.sid)
    async with asyncio.timeout(WAIT):
        answer = await task
    assert answer["status"] == "transferred" and answer["carrier"] == "telnyx" and answer["carrier_status"] == "warm"
    assert person.said == [SUMMARY]
    rooms = [room for room in setup.telnyx.conferences.values() if room == {person.sid, setup.caller.sid}]
    assert len(rooms) == 1, setup.telnyx.conferences
    assert setup.bot.asked == [("call.warm_transfer", {"event": "ringing", "to": DESK})]


async def test_without_a_summary_the_person_hears_the_bot_s_own_line(setup: Setup) -> None:
    task = warm(setup, summary=None)
    person = await consult_call(setup.telnyx)
    await setup.telnyx.answer(person.sid)
    await setup.telnyx.brief(person.sid)
    async with asyncio.timeout(WAIT):
        await task
    assert person.said == [setup.bot.line]


@pytest.mark.parametrize(("status", "code"), [("no-answer", "person_unanswered"), ("busy", "person_busy")])
async def test_a_person_who_does_not_answer_leaves_the_caller_with_the_bot_which_is_told(
        setup: Setup, status: str, code: str) -> None:
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    assert all(a.status_code == 204 for a in await setup.telnyx.finish(person.sid, status))
    error = await refused(task)
    assert (error.status, error.code) == (409, code)
    assert setup.caller.twiml == [] and setup.caller.status == "in-progress"  # untouched
    assert not setup.call.transferring and setup.call.transferred is None
    async with asyncio.timeout(WAIT):
        while len(setup.bot.asked) < 2:
            await asyncio.sleep(0.02)
    assert setup.bot.asked[-1] == ("call.warm_transfer", {"event": "failed", "reason": code})


async def test_the_person_hanging_up_during_the_briefing_is_person_left(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    await setup.telnyx.answer(person.sid)
    await setup.telnyx.finish(person.sid, "completed")
    error = await refused(task)
    assert (error.status, error.code) == (409, "person_left")
    assert setup.caller.twiml == [] and setup.telnyx.conferences == {}


async def test_a_create_whose_answer_was_lost_is_ended_once_its_own_callback_names_it(setup: Setup) -> None:
    setup.telnyx.queued_but_answered = 504  # Telnyx placed the call; its answer never came back
    error = await refused(warm(setup))
    assert (error.status, error.code) == (503, "carrier_unavailable")
    person = setup.telnyx.placed[0]
    assert person.status == "queued"  # nothing named it yet: no call is ended on a guess
    assert all(a.status_code == 204 for a in await setup.telnyx.ring(person.sid))  # its callbacks, late
    assert person.status == "completed"  # given up: the status route ended it, with Telnyx's one `Status`
    assert set(statuses_sent(setup.telnyx)) == {b"Status=completed"}
    assert not setup.telnyx.calls_to("GET", "/Calls?")  # never looked for by its numbers


async def test_a_caller_who_hangs_up_while_the_person_rings_is_call_over_and_the_person_s_call_ended(
        setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    await setup.telnyx.ring(person.sid)
    setup.caller.status = "completed"
    assert not setup.transfers.heard_hang_up(setup.call, time.time(), "stop")  # held: a transfer is under way
    setup.transfers.closed(setup.call)
    try:
        error = await refused(task)
        assert (error.status, error.code) == (409, "call_over")
        assert person.status == "completed", "the person is still being called for nobody"
        assert set(statuses_sent(setup.telnyx)) == {b"Status=completed"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await task


async def test_callbacks_not_signed_by_telnyx_or_for_another_transfer_are_refused(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.telnyx)
    url = re.search(r"<Redirect[^>]*>([^<]+)</Redirect>", person.one("Texml") or "")
    assert url is not None
    briefed = url.group(1).replace("&amp;", "&").removeprefix(PUBLIC)
    form = {"AccountSid": setup.telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app), base_url="http://127.0.0.1") as api:
        unsigned = await api.post(briefed, data=form)
        assert unsigned.status_code == 403, unsigned.text
        forged = await api.post(briefed, data=form, headers={"telnyx-signature-ed25519": "AAAA",
                                                              "telnyx-timestamp": str(int(time.time()))})
        assert forged.status_code == 403, forged.text
    # Signed by Telnyx, but at another session's URL: the MAC names the session and the transfer.
    other = PUBLIC + briefed.replace("/s-warm/", "/s-other/")
    answered = await setup.telnyx._callback(person, other, {"CallStatus": "in-progress"})  # noqa: SLF001
    assert answered is not None and answered.status_code == 403, answered and answered.text
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task


async def test_a_warm_transfer_needs_the_texml_application_that_places_the_person_s_call(
        telnyx: FakeTelnyxCalls) -> None:
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": PUBLIC, "PHONE_TRANSFER_TARGETS": DESK, "TELNYX_APPLICATION_SID": ""}
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    try:
        call = app.state.voicefleet.phone.transfers.opened("s-none", "telnyx", f"{telnyx.account_sid}/{CALLER}", [])
        with pytest.raises(ApiError) as caught:
            await app.state.voicefleet.phone.transfers.transfer(call, TransferTarget(DESK, "warm", SUMMARY))
        assert (caught.value.status, caught.value.code) == (409, "transfer_not_configured")
        assert "TELNYX_APPLICATION_SID" in caught.value.message and not telnyx.placed
    finally:
        await app.state.voicefleet.aclose()


async def test_the_fake_ends_a_call_with_telnyx_s_one_status_and_reads_it_with_its_numbers(
        telnyx: FakeTelnyxCalls) -> None:
    """What the transfer relies on, as Telnyx documents it (texml-rest-commands/update-call, fetch-a-call)."""
    rest = TelnyxCalls(API_KEY, telnyx.url)
    caller = telnyx.live_call(CALLER)
    call = f"{telnyx.account_sid}/{CALLER}"
    try:
        read = await rest.fetch(call)
        assert (read["status"], read["to"], read["from"]) == ("in-progress", caller.to, caller.sender)
        with pytest.raises(TwilioRefused) as caught:
            await rest.update(call, status="canceled")  # Twilio's word, not Telnyx's
        assert caught.value.status == 422 and caller.status == "in-progress"
        assert (await rest.update(call, status="completed"))["status"] == "completed"
    finally:
        await rest.aclose()
