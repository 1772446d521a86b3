"""A warm transfer of a Twilio call: the dispatcher in-process, Twilio a strict fake on a real port
(tests/fakes/twilio_outbound.py) playing the person: it rings, answers, runs the consult call's TwiML
(its `<Say>`, the signed `<Redirect>` to the dispatcher, the conference it is answered with) or ends
unanswered, busy or hung up, each step's status callback signed and sent to the app's ASGI transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import LiveCall, Transfers
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
from dispatcher.phone.twilio_warm import (
    GIVEN_UP,
    HANG_UP,
    WAITING,
    WAITING_SECONDS,
    Consulted,
    TwilioWarm,
    WarmCallbacks,
    briefed,
    own_call,
    record_key,
    record_status,
)
from dispatcher.settings import Settings
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.placed_calls import PUBLIC, twilio_placing
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeCall
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall, sign

DESK = "+14155550123"
SUMMARY = "Ana Ruiz, order 1042, wants a refund for a damaged parcel."
WAIT = 20.0  # generous: a busy machine


@dataclass
class Bot:
    """The session's bot as its channel answers the dispatcher: the requests it was sent, and its line."""
    line: str = "Hi, this is the assistant: a caller about a late delivery."
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float) -> Mapping[str, Any] | None:
        self.asked.append((method, dict(params)))
        return {"line": self.line} if params.get("event") == "line" else {"spoken": True}


@dataclass
class Setup:
    transfers: Transfers
    call: LiveCall
    caller: FakeCall
    bot: Bot
    twilio: FakeTwilioCalls
    app: Any


@pytest.fixture
async def setup(twilio: FakeTwilioCalls) -> AsyncIterator[Setup]:
    env = {**twilio_placing(twilio.url), "PHONE_TRANSFER_TARGETS": DESK}
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    phone = app.state.voicefleet.phone
    bot = Bot()
    assert phone.twilio_warm is not None
    # The bot's channel (dispatcher/channel/remote.py `ask_bot`) stood in by what the bot answers on it; the
    # bot's side of `line` and `failed` is tested in tests/bot/test_warm_steps.py.
    phone.twilio_warm._ask_bot = bot.ask  # noqa: SLF001
    caller = twilio.live_call("CA" + "c" * 32)
    start = {"event": "start", "start": {"callSid": caller.sid, "streamSid": "MZ1"}}
    call = phone.transfers.opened("s-warm", "twilio", caller.sid, [{"type": "websocket.receive",
                                                                     "text": json.dumps(start)}])
    yield Setup(phone.transfers, call, caller, bot, twilio, app)
    twilio.reset_knobs()
    await app.state.voicefleet.aclose()


@pytest.fixture
async def api(setup: Setup) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app), base_url="http://127.0.0.1") as client:
        yield client


async def consult_call(twilio: FakeTwilioCalls) -> PlacedCall:
    async with asyncio.timeout(WAIT):
        while not twilio.placed:
            await asyncio.sleep(0.02)
    return twilio.placed[0]


def consulting(twilio: FakeTwilioCalls, records: LocalFirstClaims,
               session_id: str) -> tuple[TwilioCalls, asyncio.Task[Consulted]]:
    """A new caller's warm transfer straight through `TwilioWarm` (no app): its REST client, for the test to
    close, and the consult under way."""
    rest = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)
    consult = TwilioWarm(rest, records, WarmCallbacks(PUBLIC, b"k" * 32), Bot().ask)
    caller = twilio.live_call("CA" + uuid.uuid4().hex)
    return rest, asyncio.create_task(consult.consult(caller.sid, session_id, TransferTarget(DESK, "warm", SUMMARY),
                                                     3600, asyncio.get_running_loop().time() + WAIT))


async def refused(task: asyncio.Task[dict[str, Any]]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        async with asyncio.timeout(WAIT):
            await task
    return caught.value


def warm(setup: Setup, summary: str | None = SUMMARY) -> asyncio.Task[dict[str, Any]]:
    return asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK, "warm", summary)))


async def test_the_person_hears_the_summary_then_both_calls_are_in_one_conference(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.twilio)
    assert (person.one("To"), person.one("From"), person.one("Timeout")) == (DESK, "+14155550199", "12")
    assert [v for k, v in person.form if k == "StatusCallbackEvent"] == ["initiated", "ringing", "answered",
                                                                         "completed"]
    assert all(a.status_code == 204 for a in await setup.twilio.answer(person.sid))
    assert setup.caller.twiml == []  # the caller is still with the bot while the person hears the briefing
    await setup.twilio.brief(person.sid)
    async with asyncio.timeout(WAIT):
        answer = await task
    assert answer["status"] == "transferred" and answer["mode"] == "warm" and answer["carrier_status"] == "warm"
    assert person.said == [SUMMARY]
    rooms = [room for room in setup.twilio.conferences.values() if room == {person.sid, setup.caller.sid}]
    assert len(rooms) == 1, setup.twilio.conferences
    assert 'endConferenceOnExit="true"' in setup.caller.twiml[-1] and "timeLimit=" in setup.caller.twiml[-1]
    # A summary was given: the bot was asked no line, only told the person is being called.
    assert setup.bot.asked == [("call.warm_transfer", {"event": "ringing", "to": DESK})]


async def test_without_a_summary_the_person_hears_the_bot_s_own_line(setup: Setup) -> None:
    task = warm(setup, summary=None)
    person = await consult_call(setup.twilio)
    await setup.twilio.answer(person.sid)
    await setup.twilio.brief(person.sid)
    async with asyncio.timeout(WAIT):
        await task
    assert person.said == [setup.bot.line]
    assert setup.bot.asked == [("call.warm_transfer", {"event": "line", "to": DESK}),
                               ("call.warm_transfer", {"event": "ringing", "to": DESK})]


@pytest.mark.parametrize(("status", "code"), [("no-answer", "person_unanswered"), ("busy", "person_busy"),
                                              ("failed", "person_unanswered")])
async def test_a_person_who_does_not_answer_leaves_the_caller_with_the_bot_which_is_told(
        setup: Setup, status: str, code: str) -> None:
    task = warm(setup)
    person = await consult_call(setup.twilio)
    assert all(a.status_code == 204 for a in await setup.twilio.finish(person.sid, status))
    error = await refused(task)
    assert (error.status, error.code) == (409, code)
    assert setup.caller.twiml == [] and setup.caller.status == "in-progress"  # untouched
    assert not setup.call.transferring and setup.call.transferred is None
    async with asyncio.timeout(WAIT):
        while len(setup.bot.asked) < 2:
            await asyncio.sleep(0.02)
    assert setup.bot.asked == [("call.warm_transfer", {"event": "ringing", "to": DESK}),
                               ("call.warm_transfer", {"event": "failed", "reason": code})]


async def test_the_person_hanging_up_during_the_briefing_is_person_left(setup: Setup) -> None:
    task = warm(setup)
    person = await consult_call(setup.twilio)
    await setup.twilio.answer(person.sid)
    await setup.twilio.finish(person.sid, "completed")
    error = await refused(task)
    assert (error.status, error.code) == (409, "person_left")
    assert setup.caller.twiml == [] and setup.twilio.conferences == {}


async def test_a_create_whose_answer_was_lost_is_found_by_its_callback_and_cancelled(setup: Setup) -> None:
    async def rings(call: PlacedCall) -> None:  # its status callbacks reach the dispatcher before the create's 504
        assert all(a.status_code == 204 for a in await setup.twilio.ring(call.sid))

    setup.twilio.before_answer = rings
    setup.twilio.queued_but_answered = 504  # Twilio placed the call; its answer never came back
    error = await refused(warm(setup))
    assert (error.status, error.code) == (503, "carrier_unavailable")
    person = setup.twilio.placed[0]
    assert person.status == "canceled" and setup.caller.twiml == []
    assert not setup.twilio.calls_to("GET", "Calls.json")  # never looked for by its numbers: another's may match


async def test_a_lost_create_s_call_whose_first_callback_comes_late_is_cancelled_then(setup: Setup) -> None:
    setup.twilio.queued_but_answered = 504
    error = await refused(warm(setup))
    assert (error.status, error.code) == (503, "carrier_unavailable")
    person = setup.twilio.placed[0]
    assert person.status == "queued"  # nothing named it yet: no call is ended on a guess
    assert all(a.status_code == 204 for a in await setup.twilio.ring(person.sid))  # its callbacks, late
    assert person.status == "canceled"  # the transfer was given up: the status route ended it


async def test_a_warm_transfer_of_a_plivo_call_needs_plivo_s_credentials(setup: Setup) -> None:
    call = setup.transfers.opened("s-plivo", "plivo", None, [])
    with pytest.raises(ApiError) as caught:
        await setup.transfers.transfer(call, TransferTarget(DESK, "warm"))
    assert (caught.value.status, caught.value.code) == (409, "transfer_not_configured")
    assert "PLIVO_AUTH_ID" in caught.value.message  # tests/dispatcher/phone/test_plivo_warm.py: with them


async def test_a_briefing_that_ends_after_the_transfer_was_given_up_is_hung_up_and_forgeries_are_refused(
        setup: Setup, api: httpx.AsyncClient) -> None:
    task = warm(setup)
    person = await consult_call(setup.twilio)
    await setup.twilio.answer(person.sid)
    await setup.twilio.finish(person.sid, "completed")
    await refused(task)
    url = re.search(r"<Redirect[^>]*>([^<]+)</Redirect>", person.one("Twiml") or "")
    assert url is not None
    briefed = url.group(1).replace("&amp;", "&")
    form = [("AccountSid", ACCOUNT_SID), ("CallSid", person.sid), ("CallStatus", "in-progress")]
    path = briefed.removeprefix(PUBLIC)
    forged = await api.post(path, data=dict(form), headers={"X-Twilio-Signature": sign("not-the-token", briefed, form)})
    assert forged.status_code == 403, forged.text
    other = briefed.replace("/s-warm/", "/s-other/")  # the MAC names the session and the transfer
    elsewhere = await api.post(other.removeprefix(PUBLIC), data=dict(form),
                               headers={"X-Twilio-Signature": sign(AUTH_TOKEN, other, form)})
    assert elsewhere.status_code == 403, elsewhere.text
    late = await api.post(path, data=dict(form), headers={"X-Twilio-Signature": sign(AUTH_TOKEN, briefed, form)})
    assert late.status_code == 200 and late.text == "<Response><Hangup/></Response>", late.text


async def test_a_person_still_ringing_when_the_wait_ends_is_cancelled_and_the_bot_told(
        twilio: FakeTwilioCalls) -> None:
    """The dispatcher's own bound (Twilio's `Timeout` aside): its wait over, the ringing call is cancelled."""
    rest = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)
    bot = Bot()
    consult = TwilioWarm(rest, LocalFirstClaims(), WarmCallbacks(PUBLIC, b"k" * 32), bot.ask)
    caller = twilio.live_call("CA" + "d" * 32)
    try:
        with pytest.raises(ApiError) as caught:
            await consult.consult(caller.sid, "s-ring", TransferTarget(DESK, "warm", SUMMARY), 3600,
                                  asyncio.get_running_loop().time() + 0.5)
    finally:
        await rest.aclose()
    assert (caught.value.status, caught.value.code) == (409, "person_unanswered")
    assert twilio.placed[0].status == "canceled" and caller.twiml == []
    async with asyncio.timeout(WAIT):
        while len(bot.asked) < 2:
            await asyncio.sleep(0.02)
    assert bot.asked == [("call.warm_transfer", {"event": "ringing", "to": DESK}),
                         ("call.warm_transfer", {"event": "failed", "reason": "person_unanswered"})]


async def test_a_person_still_hearing_the_briefing_when_the_wait_ends_is_joined_to_the_room(
        twilio: FakeTwilioCalls) -> None:
    """As the SIP edge bridges once its briefing's time is up: the person's call is moved to the conference."""
    rest = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)
    records = LocalFirstClaims()
    consult = TwilioWarm(rest, records, WarmCallbacks(PUBLIC, b"k" * 32), Bot().ask)
    caller = twilio.live_call("CA" + "e" * 32)
    loop = asyncio.get_running_loop()
    try:
        task = asyncio.create_task(consult.consult(caller.sid, "s-long", TransferTarget(DESK, "warm", SUMMARY), 3600,
                                                   loop.time() + 1.0))
        person = await consult_call(twilio)
        person.status = "in-progress"  # answered, its status callback kept (what the route does with it)
        transfer = (person.one("StatusCallback") or "").split("/")[-3]
        assert await own_call(records, transfer, person.sid)
        await record_status(records, transfer, "in-progress")
        async with asyncio.timeout(WAIT):
            consulted = await task
    finally:
        await rest.aclose()
    assert consulted.sid == person.sid
    assert person.twiml and "<Conference" in person.twiml[-1] and f"vf-warm-{consulted.transfer}" in person.twiml[-1]
    assert twilio.conferences == {f"vf-warm-{consulted.transfer}": {person.sid}}  # the caller's update follows


async def test_an_answered_person_whose_transfer_is_cancelled_mid_wait_is_hung_up(twilio: FakeTwilioCalls) -> None:
    """The replica stops while the person hears the briefing: nobody will join the caller, so their call is ended.
    An answered call takes `completed` only (Twilio's `canceled` leaves it up: the strict fake does the same)."""
    records = LocalFirstClaims()
    rest, task = consulting(twilio, records, "s-stop")
    try:
        person = await consult_call(twilio)
        person.status = "in-progress"  # answered, its status callback kept (what the route does with it)
        transfer = (person.one("StatusCallback") or "").split("/")[-3]
        assert await own_call(records, transfer, person.sid)
        await record_status(records, transfer, "in-progress")
        assert (await rest.update(person.sid, status="canceled"))["status"] == "in-progress"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await rest.aclose()
    assert person.status == "completed"
    assert await briefed(records, transfer) == HANG_UP  # its briefing's <Redirect>, at any replica: hung up


async def test_a_transfer_whose_waiting_replica_was_killed_is_given_up_at_its_next_callback() -> None:
    """A replica killed mid-wait renews its mark no more: the person's next status callback (the route then ends
    the call) or their briefing's `<Redirect>` (answered with a hang-up), at any replica, gives the transfer up."""
    now = [0.0]
    records = LocalFirstClaims(clock=lambda: now[0])
    transfer, sid = "a" * 32, "CA" + "1" * 32
    await records.first(record_key(transfer, "waiting"), WAITING, WAITING_SECONDS)  # as the waiter marks it
    assert await own_call(records, transfer, sid)  # the callback's call, as the route claims it
    assert await record_status(records, transfer, "ringing") is None  # someone waits: nothing decided
    assert await records.keep(record_key(transfer, "waiting"), WAITING, WAITING_SECONDS)  # its poll renews it
    now[0] += WAITING_SECONDS + 1.0  # killed: nobody renews it
    assert await record_status(records, transfer, "in-progress") == GIVEN_UP
    assert await briefed(records, transfer) == HANG_UP


class CountedClaims(LocalFirstClaims):
    """The one-process store's records, each claim's key noted."""

    def __init__(self) -> None:
        super().__init__()
        self.claimed: list[str] = []

    async def first(self, what: str, value: str, seconds: float) -> str:
        self.claimed.append(what)
        return await super().first(what, value, seconds)


async def test_a_status_callback_claims_its_call_in_the_store_once(twilio: FakeTwilioCalls) -> None:
    """Each status callback is one round trip to the store for its call, not two: `own_call` claims it and
    `record_status` keeps what it says."""
    records = CountedClaims()
    rest = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)
    warm = TwilioWarm(rest, records, WarmCallbacks(PUBLIC, b"k" * 32), Bot().ask)
    transfer, sid = "d" * 32, "CA" + "2" * 32
    await records.first(record_key(transfer, "waiting"), WAITING, WAITING_SECONDS)  # as the waiter marks it
    try:
        for status in ("initiated", "ringing", "in-progress"):
            assert not await warm.heard(transfer, sid, status)  # kept; nothing to end
    finally:
        await rest.aclose()
    assert records.claimed.count(record_key(transfer, "sid")) == 3, records.claimed
    assert await records.held(record_key(transfer, "answered")) == "in-progress"
