"""A Daily dial-in call's warm transfer (dispatcher/phone/daily_warm.py), driven through `DailyTransfers` as the
dispatcher wires it, with the real Daily client against the strict fake (tests/fakes/daily.py) playing the
person's leg, the in-memory first-claims store, and a bot whose channel answers each step it is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from botchannel.transfer import METHOD_WARM_TRANSFER
from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.media.room_options import RoomOptions
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.daily_legs import DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.daily_warm import DailyWarm
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.sessions.ids import new_session_id
from dispatcher.store.memory import LocalFirstClaims
from tests.fakes.daily import FakeDaily
from tests.support.daily_hooks_app import hooked

SESSION = new_session_id(PHONE_CALLER, "daily-dialin:warm-call")
DESK = "+14155550123"
WARM = TransferTarget(DESK, "warm", "Ana Lopez, order 1042, wants a refund.")


class _Sessions:
    async def get(self, session_id: str) -> Any:
        return SimpleNamespace(machine=SimpleNamespace(has_room=True, state=SimpleNamespace(is_active=True)))


@dataclass
class Bot:
    """The session's bot on its channel: every `call.warm_transfer` step it was told, in order; `briefing`
    set, the `brief` step answers at once, else it waits for it (the bot still speaking)."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    briefing: asyncio.Event = field(default_factory=asyncio.Event)
    briefed: asyncio.Event = field(default_factory=asyncio.Event)  # the `brief` step came

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        assert (session_id, method) == (SESSION, METHOD_WARM_TRANSFER)
        self.steps.append(dict(params))
        if params["event"] == "brief":
            self.briefed.set()
            await self.briefing.wait()
        return {"stopped": True} if params["event"] == "stop" else {"spoken": True}

    def events(self) -> list[str]:
        return [step["event"] for step in self.steps]


@dataclass
class Call:
    daily: FakeDaily
    transfers: DailyTransfers
    claims: LocalFirstClaims
    bot: Bot
    room: str
    caller: str

    def start(self, target: TransferTarget = WARM) -> asyncio.Task[dict[str, Any]]:
        return asyncio.create_task(self.transfers.transfer(SESSION, target))  # type: ignore[arg-type]

    async def ringing(self) -> str:
        assert await self.daily.eventually(lambda: bool(self.daily.ringing(self.room)))
        return self.daily.ringing(self.room)[0]

    async def refused(self, task: asyncio.Task[dict[str, Any]]) -> ApiError:
        with pytest.raises(ApiError) as refused:
            await task
        return refused.value

    def heard(self, participant: str) -> Any:
        return self.daily.permissions.get(self.room, {}).get(participant, {}).get("canReceive")


async def dialin_call(daily: FakeDaily) -> tuple[DailyRooms, str, str]:
    """SESSION's dial-in room at `daily`, its bot and its caller in it: (rooms, the room, the caller's id)."""
    rooms = DailyRooms(DailySettings.from_env({**daily.env, "DAILY_TIMEOUT_SECONDS": "1"}))
    await rooms.create(SESSION, 600, _dialin_room())
    room = rooms.room_name(SESSION)
    daily.join(room, rooms.bot_user_id(SESSION))
    return rooms, room, daily.dial_in(room)


@pytest.fixture
async def call(fake_daily: FakeDaily) -> AsyncIterator[Call]:
    rooms, room, caller = await dialin_call(fake_daily)
    bot, claims = Bot(), LocalFirstClaims()
    legs = DialoutLegs(claims)
    await hooked(fake_daily, DailyHooks(legs, stop_in_room(rooms, 1.0)))  # Daily's signed dialout.* events
    warm = DailyWarm(rooms, bot.ask, legs, ring_seconds=1.0, poll_seconds=0.02, found_seconds=5.0,
                     watch_seconds=0.05)
    transfers = DailyTransfers(rooms, _Sessions(), claims, parse_transfer_targets("+1415555*"), None, warm=warm)
    yield Call(fake_daily, transfers, claims, bot, room, caller)
    bot.briefing.set()
    await rooms.aclose()


def _dialin_room() -> RoomOptions:
    return RoomOptions(room={"sip": {"sip_mode": "dial-in", "num_endpoints": 1}, "enable_dialout": True})


async def test_answered_the_person_hears_the_briefing_then_both_are_bridged(call: Call) -> None:
    task = call.start()
    person = call.daily.answer_dial_out(await call.ringing())
    assert await call.daily.eventually(call.bot.briefed.is_set)
    bot = f"bot-{SESSION}"
    assert call.heard(person) == call.heard(call.caller) == {"base": False, "byUserId": {bot: True}}
    call.bot.briefing.set()
    answer = await task
    assert (answer["mode"], answer["carrier_status"], answer["status"]) == ("warm", "warm", "transferred")
    assert call.heard(person) == call.heard(call.caller) == {"base": True, "byUserId": {bot: False}}
    (bot_id,) = [p["id"] for p in call.daily.presence[call.room] if p["userId"] == bot]
    assert call.daily.permissions[call.room][bot_id] == {"canSend": False, "canReceive": {"base": False}}
    assert call.bot.events() == ["ringing", "brief"] and call.bot.steps[1]["summary"] == WARM.summary
    assert call.daily.dial_outs[person]["state"] == "answered"  # still on: the two are talking


async def test_no_answer_stops_the_persons_leg_and_the_caller_is_back_with_the_bot(call: Call) -> None:
    task = call.start()
    ringing = await call.ringing()
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (409, "person_unanswered")
    assert call.daily.dial_outs[ringing]["state"] == "stopped"
    assert await call.daily.eventually(lambda: call.bot.events() == ["ringing", "failed"])
    assert await call.claims.held(record_key(SESSION)) is None  # nothing transferred: it may be tried again


async def test_a_busy_line_never_joins_and_is_answered_unanswered(call: Call) -> None:
    task = call.start()
    call.daily.refuse_dial_out(await call.ringing())
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (409, "person_unanswered")
    assert await call.daily.eventually(lambda: "failed" in call.bot.events())


async def test_the_person_hanging_up_during_the_briefing_quiets_the_bot_then_it_tells_the_caller(call: Call) -> None:
    task = call.start()
    person = call.daily.answer_dial_out(await call.ringing())
    assert await call.daily.eventually(call.bot.briefed.is_set)
    call.daily.hang_up_dial_out(person)
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (409, "person_left")
    assert call.heard(call.caller) == {"base": True}  # the caller hears the room (the bot) again
    assert await call.daily.eventually(lambda: call.bot.events() == ["ringing", "brief", "stop", "failed"])


async def test_the_caller_leaving_while_the_person_rings_stops_the_persons_leg(call: Call) -> None:
    task = call.start()
    ringing = await call.ringing()
    people = call.daily.presence[call.room]
    people[:] = [p for p in people if p["id"] != call.caller]  # the caller hung up: Daily's participant-left
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (409, "call_over")
    assert call.daily.dial_outs[ringing]["state"] == "stopped"
    assert "failed" not in call.bot.events()  # nobody left to tell


async def test_a_429_on_the_start_is_tried_again_and_only_one_leg_rings(call: Call) -> None:
    call.daily.fail(429, method="POST", path_contains="/dialOut/start", retry_after=0.1)
    task = call.start()
    call.daily.answer_dial_out(await call.ringing())
    call.bot.briefing.set()
    assert (await task)["carrier_status"] == "warm"
    assert len(call.daily.calls_to("POST", "/dialOut/start")) == 2 and len(call.daily.dial_outs) == 1


async def test_a_start_whose_answer_was_lost_is_never_sent_again_and_its_leg_is_stopped(call: Call) -> None:
    hold = call.daily.hold(method="POST", path_contains="/dialOut/start")
    task = call.start()
    assert await call.daily.eventually(lambda: hold.caught == 1)
    reads = len(call.daily.calls_to("GET", "/presence"))  # the caller's, before the start
    assert await call.daily.eventually(lambda: len(call.daily.calls_to("GET", "/presence")) > reads)
    hold.release()  # the start lands after the dispatcher gave up on its answer: the person's phone rings
    call.daily.answer_dial_out(await call.ringing())
    refused = await call.refused(task)
    assert (refused.status, refused.code) == (504, "transfer_outcome_unknown")
    assert [d["state"] for d in call.daily.dial_outs.values()] == ["stopped"]  # found by its user, and stopped
    assert len(call.daily.calls_to("POST", "/dialOut/start")) == 1
    assert await call.claims.held(record_key(SESSION)) is not None  # kept: a new transfer of this call is refused


async def test_a_room_without_dial_out_is_dailys_refusal_and_nothing_rings(call: Call, fake_daily: FakeDaily) -> None:
    fake_daily.rooms[call.room]["config"]["enable_dialout"] = False
    refused = await call.refused(call.start())
    assert (refused.status, refused.code) == (502, "carrier_refused")
    assert fake_daily.dial_outs == {} and call.bot.events() == []


async def test_the_bot_of_a_dial_in_room_owns_nothing_though_the_room_allows_dial_out(fake_daily: FakeDaily) -> None:
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    try:
        grant = await rooms.grant(SESSION, 600, _dialin_room())
    finally:
        await rooms.aclose()
    assert fake_daily.verify_token(grant.bot_token)["o"] is False  # only the dispatcher's key dials out of it
