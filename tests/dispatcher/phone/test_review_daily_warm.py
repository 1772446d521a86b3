"""A hostile review of a Daily dial-in call's warm transfer (dispatcher/phone/daily_warm.py): what Daily's own
documents say it does, held against the dispatcher and the fake (tests/fakes/daily.py). Each test is a finding
the current code fails; it passes once the finding is fixed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone import daily_warm
from dispatcher.phone.daily_legs import DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.phone.daily_warm import DailyWarm
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_daily_warm import SESSION, WARM, Bot, Call, _dialin_room
from tests.dispatcher.phone.test_daily_warm import call as call  # noqa: PLC0414 - the same call, reused
from tests.fakes.daily import FakeDaily
from tests.support.daily_hooks_app import hooked


def _connected(daily: FakeDaily, session: str) -> None:
    """Daily's `dialout.connected`: the person's phone rings, and its leg is in the room already, sending the
    ringback that the room hears (docs.daily.co/reference/rest-api/webhooks/events/dialout-connected: "the
    initiator will hear the call ringing"; pipecat-ai/pipecat-examples phone-chatbot/daily-pstn-warm-transfer/
    bot.py stops its hold music on `on_dialout_connected` "so customer hears the ringing", and briefs only on
    `on_dialout_answered`). The person has not answered."""
    dial = daily.dial_outs[session]
    daily.presence[dial["room"]].append({
        "room": dial["room"], "id": session, "userId": dial["userId"], "userName": dial["displayName"],
        "mtgSessionId": f"mtg-{dial['room']}", "joinTime": datetime.now(UTC).isoformat(), "duration": 0})


async def test_a_ringing_leg_in_the_room_is_neither_briefed_nor_bridged(call: Call) -> None:
    call.bot.briefing.set()  # the bot says its briefing at once
    task = call.start()
    _connected(call.daily, await call.ringing())  # rings; nobody ever answers
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (409, "person_unanswered")
    assert "brief" not in call.bot.events()


async def test_the_person_hanging_up_after_the_bridge_leaves_no_silent_open_line(call: Call) -> None:
    call.bot.briefing.set()
    task = call.start()
    person = call.daily.answer_dial_out(await call.ringing())
    assert (await task)["carrier_status"] == "warm"
    call.daily.hang_up_dial_out(person)
    room, bot_user = call.room, f"bot-{SESSION}"

    def caller_not_left_in_silence() -> bool:
        people = call.daily.presence.get(room, [])
        if room not in call.daily.rooms or all(p["id"] != call.caller for p in people):
            return True  # the caller's call ended with the person's
        bot = next((p["id"] for p in people if p["userId"] == bot_user), None)
        granted = call.daily.permissions.get(room, {})
        hears_bot = granted.get(call.caller, {}).get("canReceive", {}).get("byUserId", {}).get(bot_user) is not False
        return hears_bot and bot is not None and granted.get(bot, {}).get("canSend") is not False

    assert await call.daily.eventually(caller_not_left_in_silence, timeout=10.0)


async def test_no_step_of_the_transfer_is_asked_of_daily_after_its_deadline(
        fake_daily: FakeDaily, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daily_warm, "CALL_SECONDS", 0.3)  # each Daily request's bound, shrunk with the deadline
    rooms = DailyRooms(DailySettings.from_env({**fake_daily.env, "DAILY_TIMEOUT_SECONDS": "1"}))
    await rooms.create(SESSION, 600, _dialin_room())
    room = rooms.room_name(SESSION)
    fake_daily.join(room, rooms.bot_user_id(SESSION))
    caller = fake_daily.dial_in(room)
    bot = Bot()  # its briefing never ends: a long summary, a slow voice
    asked: list[float] = []
    loop = asyncio.get_running_loop()

    async def permit(session_id: str, updates: Any) -> None:  # the real call, its moment noted
        asked.append(loop.time())
        await DailyRooms.update_permissions(rooms, session_id, updates)

    rooms.update_permissions = permit  # type: ignore[method-assign]
    legs = DialoutLegs(LocalFirstClaims())
    await hooked(fake_daily, DailyHooks(legs, stop_in_room(rooms, 1.0)))
    warm = DailyWarm(rooms, bot.ask, legs, ring_seconds=1.0, poll_seconds=0.02)
    until = loop.time() + 1.5
    try:
        task = asyncio.create_task(warm.transfer(SESSION, caller, WARM, until))
        assert await fake_daily.eventually(lambda: bool(fake_daily.ringing(room)))
        fake_daily.answer_dial_out(fake_daily.ringing(room)[0])
        await asyncio.wait({task})
        assert asked and max(asked) <= until
    finally:
        bot.briefing.set()
        await rooms.aclose()


async def test_the_fake_refuses_permissions_of_the_wrong_type_as_daily_does(fake_daily: FakeDaily) -> None:
    # docs.daily.co/reference/rest-api/rooms/update-permissions: hasPresence boolean; canSend, canAdmin "boolean
    # or array"
    fake_daily.rooms["r"] = {"config": {}}
    fake_daily.join("r", "bot-x")
    async with httpx.AsyncClient(base_url=fake_daily.url, headers={"Authorization": f"Bearer {fake_daily.api_key}"},
                                 timeout=5) as client:
        for update in ({"canSend": "yes"}, {"hasPresence": "no"}, {"canAdmin": 1}):
            answer = await client.post("/rooms/r/update-permissions", json={"data": {"p-bot-x": update}})
            assert answer.status_code == 400, update


async def test_a_leg_that_could_not_be_stopped_is_not_answered_as_nothing_transferred(call: Call) -> None:
    call.daily.fail(500, method="POST", path_contains="/dialOut/stop", times=50)
    task = call.start()
    ringing = await call.ringing()
    refused = await call.refused(task)  # unanswered within the ring: the stop is tried, and fails
    assert call.daily.dial_outs[ringing]["state"] == "ringing"  # Daily still rings the person
    assert (refused.status, refused.code) != (409, "person_unanswered")
    assert await call.claims.held(record_key(SESSION)) is not None  # a second transfer would ring a second phone


async def test_the_persons_leg_is_recorded_where_another_replica_can_stop_it(call: Call) -> None:
    task = call.start()
    person = call.daily.answer_dial_out(await call.ringing())
    assert await call.daily.eventually(call.bot.briefed.is_set)  # the riskiest moment: both hear the bot alone
    try:
        record = await call.claims.held(record_key(SESSION))
        assert record is not None and person in str(record)
    finally:
        call.bot.briefing.set()
        await task
