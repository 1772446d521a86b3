"""A hostile review of the Twilio warm transfer (dispatcher/phone/twilio_warm.py): what it leaves behind when a
create's answer is lost while another transfer to the same person is under way, when its request is cancelled
mid-wait, when the caller hangs up while the person rings, and when the bot's own briefing carries a character
XML cannot hold: each leaves nobody called for nothing, and no other call touched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import xml.etree.ElementTree as ET

import pytest

from dispatcher.errors import ApiError
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
from dispatcher.phone.twilio_warm import HANG_UP, TwilioWarm, WarmCallbacks, briefed
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.placed_calls import PUBLIC
from tests.dispatcher.phone.test_twilio_warm import (  # noqa: F401 (setup: the fixture)
    DESK,
    SUMMARY,
    WAIT,
    Bot,
    Setup,
    consult_call,
    consulting,
    setup,
    warm,
)
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls


def rest_of(twilio: FakeTwilioCalls) -> TwilioCalls:
    return TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)


async def test_a_lost_create_never_ends_another_transfers_call_to_the_same_person(setup: Setup) -> None:  # noqa: F811
    """One support number, one desk: two callers' warm transfers at once. The second's create times out (Twilio
    placed it all the same); its call is cancelled once its own status callback names it, never the first
    transfer's person, who is answering (hearing the briefing, or already in the room with the first caller)."""
    first = warm(setup)
    try:
        person = await consult_call(setup.twilio)
        assert all(a.status_code == 204 for a in await setup.twilio.answer(person.sid))  # the first's person
        caller = setup.twilio.live_call("CA" + "2" * 32)
        assert caller.to == setup.caller.to  # both reached the account's one number
        start = {"event": "start", "start": {"callSid": caller.sid, "streamSid": "MZ2"}}
        second = setup.transfers.opened("s-second", "twilio", caller.sid,
                                        [{"type": "websocket.receive", "text": json.dumps(start)}])
        setup.twilio.queued_but_answered = 504  # the second create: placed, its answer lost
        with pytest.raises(ApiError) as caught:
            async with asyncio.timeout(WAIT):
                await setup.transfers.transfer(second, TransferTarget(DESK, "warm", SUMMARY))
        assert caught.value.code == "carrier_unavailable"
        assert person.status == "in-progress", "the other transfer's person was hung up"
        lost = setup.twilio.placed[1]
        assert all(a.status_code == 204 for a in await setup.twilio.ring(lost.sid))  # its callbacks name it
        assert lost.status == "canceled"  # its own call, ended
        assert person.status == "in-progress"
    finally:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await first


async def test_a_consult_cancelled_while_the_person_rings_leaves_nobody_briefed_into_an_empty_room(
        twilio: FakeTwilioCalls) -> None:
    records = LocalFirstClaims()
    rest, task = consulting(twilio, records, "s-cut")
    try:
        person = await consult_call(twilio)
        transfer = (person.one("StatusCallback") or "").split("/")[-3]
        task.cancel()  # e.g. the loop's tasks cancelled as the replica stops
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await rest.aclose()
    # The person picks up now: their briefing's <Redirect> reaches another replica. Nobody waits for them.
    assert await briefed(records, transfer) == HANG_UP


async def test_a_bot_line_with_a_control_character_still_calls_the_person(twilio: FakeTwilioCalls) -> None:
    """An LLM-written briefing with a form feed: the summary's own check would refuse it with a 422; the bot's
    line goes into `<Say>` as it is, and Twilio refuses the create (or the person hears an application error)."""
    rest = rest_of(twilio)
    bot = Bot(line="Ana Ruiz\x0c order 1042, a refund.")
    warm = TwilioWarm(rest, LocalFirstClaims(), WarmCallbacks(PUBLIC, b"k" * 32), bot.ask)
    caller = twilio.live_call("CA" + "4" * 32)
    try:
        with pytest.raises(ApiError) as caught:  # nobody answers within the short wait: the ordinary outcome
            await warm.consult(caller.sid, "s-ff", TransferTarget(DESK, "warm"), 3600,
                               asyncio.get_running_loop().time() + 0.5)
    finally:
        await rest.aclose()
    assert caught.value.code == "person_unanswered", caught.value
    ET.fromstring(twilio.placed[0].one("Twiml") or "")  # noqa: S314 (the dispatcher's own output)


async def test_a_caller_who_hangs_up_while_the_person_rings_ends_the_call_to_the_person(
        setup: Setup) -> None:  # noqa: F811
    task = warm(setup)
    person = await consult_call(setup.twilio)
    # The caller hangs up while still with the bot: Twilio's stream stops and the relay ends the call.
    setup.caller.status = "completed"
    assert not setup.transfers.heard_hang_up(setup.call, time.time(), "stop")  # held: a transfer is under way
    setup.transfers.closed(setup.call)
    try:
        with pytest.raises(ApiError):
            async with asyncio.timeout(10.0):  # the poll's 0.2 s, many times over; not the 25 s wait
                await task
        assert person.status in ("canceled", "completed"), "the person is still being called for nobody"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await task
