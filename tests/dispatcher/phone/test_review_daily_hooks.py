"""A hostile review of Daily's webhook receiver (dispatcher/api/routers/daily_webhooks.py, dispatcher/phone/
daily_legs.py) and the Daily warm transfer that waits on it (dispatcher/phone/daily_warm.py): the real route, the
real `DailyHooks` and `DailyWarm`, the strict Daily fake (tests/fakes/daily.py). Each test is a finding the current
code fails; it passes once the finding is fixed.

Daily's webhooks are delivered at least once and in no promised order: docs/phone.md has the webhook created with
`retryType: exponential` so that Daily sends an event again, and subscribed to `dialout.connected` (sent while the
phone rings, https://docs.daily.co/reference/rest-api/webhooks/events/dialout-connected) as well as
`dialout.answered`. A second delivery of an event the dispatcher already acted on is Daily's ordinary behaviour,
and within the 300 s window it is also what an attacker who captured one signed request can send."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from botchannel.transfer import DAILY_PERSON_USER
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone.daily_legs import WAITING_SECONDS, DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_signature import sign, webhook_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.daily_warm import CALL_SECONDS, DailyWarm
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_daily_warm import SESSION, WARM, Bot, _dialin_room, _Sessions
from tests.fakes.daily import FakeDaily
from tests.support.daily_hooks_app import SECRET, URL, hooked

SIGNED = ("content-type", "x-webhook-timestamp", "x-webhook-signature")


class Clock:
    """The store's clock (`LocalFirstClaims`), moved on by a test instead of waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Hooked:
    """A Daily dial-in call whose warm transfer waits on `waiter`'s store while Daily's webhooks reach `app`."""
    daily: FakeDaily
    rooms: DailyRooms
    hooks: DailyHooks
    app: FastAPI
    transfers: DailyTransfers
    bot: Bot
    clock: Clock
    room: str
    sent: list[httpx.Request]  # every webhook request Daily made, as it made it
    claims: LocalFirstClaims  # the store of the region the transfer is in

    def start(self) -> asyncio.Task[dict[str, Any]]:
        return asyncio.create_task(self.transfers.transfer(SESSION, WARM))  # type: ignore[arg-type]

    async def ringing(self) -> str:
        assert await self.daily.eventually(lambda: bool(self.daily.ringing(self.room)))
        return self.daily.ringing(self.room)[0]

    def delivered(self, kind: str) -> httpx.Request:
        return next(r for r in self.sent if json.loads(r.content)["type"] == kind)

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """A request to the webhook route, and the stop of a leg it found nobody's finished."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), timeout=10) as client:
            answer = await client.post(URL, content=body, headers=headers)
        await asyncio.gather(*list(self.hooks._stopping))  # noqa: SLF001 - the background stop, awaited
        return answer.status_code

    async def again(self, request: httpx.Request) -> int:
        """`request` delivered a second time, as Daily sent it (its retry), or as one who captured it replays it."""
        return await self.post(request.content, {name: request.headers[name] for name in SIGNED})


async def _hooked(daily: FakeDaily, *, regions: bool = False) -> Hooked:
    rooms = DailyRooms(DailySettings.from_env({**daily.env, "DAILY_TIMEOUT_SECONDS": "1"}))
    await rooms.create(SESSION, 600, _dialin_room())
    room = rooms.room_name(SESSION)
    daily.join(room, rooms.bot_user_id(SESSION))
    daily.dial_in(room)
    clock, bot = Clock(), Bot()
    claims = LocalFirstClaims(clock=clock)
    # One region's store for the waiter; the webhook lands where the front door sends it (another region's, with
    # `regions`: docs/regions.md, "no store spans regions"; docs/phone.md, one webhook for every region).
    heard_at = DialoutLegs(LocalFirstClaims(clock=clock)) if regions else DialoutLegs(claims)
    hooks = DailyHooks(heard_at, stop_in_room(rooms, 1.0))
    app = await hooked(daily, hooks)
    sent: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=10,
                                              event_hooks={"request": [keep]})
    warm = DailyWarm(rooms, bot.ask, DialoutLegs(claims), ring_seconds=5.0, poll_seconds=0.02, watch_seconds=0.05)
    transfers = DailyTransfers(rooms, _Sessions(), claims, parse_transfer_targets("+1415555*"), None, warm=warm)
    return Hooked(daily, rooms, hooks, app, transfers, bot, clock, room, sent, claims)


@pytest.fixture
async def call(fake_daily: FakeDaily) -> AsyncIterator[Hooked]:
    hooked_call = await _hooked(fake_daily)
    yield hooked_call
    hooked_call.bot.briefing.set()
    await hooked_call.rooms.aclose()


def _signed_connected(daily: FakeDaily, dial: str) -> tuple[bytes, dict[str, str]]:
    """Daily's `dialout.connected` for the leg `dial`, signed with the webhook's secret (its documented payload:
    reference/rest-api/webhooks/events/dialout-connected)."""
    leg = daily.dial_outs[dial]
    now = time.time()
    body = json.dumps({"version": "1.0.0", "type": "dialout.connected", "id": f"dial-out-con-{dial}",
                       "payload": {"domain_id": "d", "room": leg["room"], "timestamp": int(now), "session_id": dial,
                                   "user_id": leg["userId"], "destination": leg.get("phoneNumber")},
                       "event_ts": round(now, 3)}).encode()
    stamp = str(int(now))
    return body, {"content-type": "application/json", "x-webhook-timestamp": stamp,
                  "x-webhook-signature": sign(webhook_key(SECRET), stamp, body)}


@pytest.mark.parametrize("late", ["dialout.answered delivered again", "dialout.connected delivered late"])
async def test_a_second_delivery_after_the_bridge_leaves_the_bridged_call_up(call: Hooked, late: str) -> None:
    call.bot.briefing.set()
    task = call.start()
    person = call.daily.answer_dial_out(await call.ringing())
    answer = await task
    assert (answer["status"], answer["carrier_status"]) == ("transferred", "warm")
    if late.startswith("dialout.answered"):
        status = await call.again(call.delivered("dialout.answered"))
    else:
        status = await call.post(*_signed_connected(call.daily, person))
    assert status == 200
    assert call.daily.dial_outs[person]["state"] == "answered"  # the person and the caller still talking


async def test_an_answer_delivered_again_during_a_long_briefing_leaves_the_person_on(call: Hooked) -> None:
    task = call.start()  # the bot's briefing goes on until the test lets it end
    person = call.daily.answer_dial_out(await call.ringing())
    assert await call.daily.eventually(call.bot.briefed.is_set)
    call.clock.now += WAITING_SECONDS + 1  # the briefing has lasted 6 s (it may last 20)
    assert await call.again(call.delivered("dialout.answered")) == 200
    stopped = call.daily.dial_outs[person]["state"]
    call.bot.briefing.set()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    assert stopped == "answered"
    assert isinstance(outcome, dict) and outcome["status"] == "transferred", outcome


async def test_an_answer_heard_during_a_slow_read_of_the_room_is_not_stopped(call: Hooked) -> None:
    read = call.rooms.presence
    slow: list[str] = []

    async def presence(session_id: str) -> Any:
        ringing = call.daily.ringing(call.room)
        if ringing and not slow:  # this read takes its whole bound; the person answers meanwhile
            slow.append(ringing[0])
            call.clock.now += CALL_SECONDS
            call.daily.answer_dial_out(ringing[0])
            assert await call.daily.eventually(lambda: ("dialout.answered", 200) in call.daily.sent_webhooks)
            await asyncio.gather(*list(call.hooks._stopping))  # noqa: SLF001 - the background stop, awaited
        return await read(session_id)

    call.rooms.presence = presence  # type: ignore[method-assign]
    call.bot.briefing.set()
    outcome = (await asyncio.gather(call.start(), return_exceptions=True))[0]
    assert slow and call.daily.dial_outs[slow[0]]["state"] == "answered"
    assert isinstance(outcome, dict) and outcome["status"] == "transferred", outcome


async def test_a_leg_another_regions_store_placed_is_neither_stopped_nor_kept_where_its_answer_lands(
        fake_daily: FakeDaily) -> None:
    # A region without the relay (its leg's userId names no region): kept nowhere here. The relay to the region
    # that placed it: tests/dispatcher/phone/test_daily_warm_regions.py.
    call = await _hooked(fake_daily, regions=True)
    try:
        user = DAILY_PERSON_USER + "2" * 24
        await DialoutLegs(call.claims).place(user)  # the region that placed it, its store
        dial = await call.rooms.dial_out_start(SESSION, "+14155550123", user)
        call.daily.answer_dial_out(dial)
        assert await call.daily.eventually(lambda: ("dialout.answered", 200) in call.daily.sent_webhooks)
        await asyncio.gather(*list(call.hooks._stopping))  # noqa: SLF001 - the background stop, awaited
        assert call.daily.dial_outs[dial]["state"] == "answered"
        assert not await call.hooks.legs.answered(dial)  # nothing of it in the store of the region it reached
    finally:
        await call.rooms.aclose()


async def test_the_fake_posts_dialout_connected_while_the_phone_rings(call: Hooked) -> None:
    task = call.start()
    await call.ringing()
    try:
        assert await call.daily.eventually(lambda: any(k == "dialout.connected" for k, _ in call.daily.sent_webhooks),
                                           timeout=2.0)
    finally:
        await asyncio.gather(task, return_exceptions=True)


async def test_a_dial_out_that_is_no_transfers_leaves_nothing_in_the_store(call: Hooked) -> None:
    dial = "7d208e2a-520b-4a8d-a2c9-3a36dfa0d342"
    now = time.time()
    body = json.dumps({"version": "1.0.0", "type": "dialout.answered", "id": f"dial-out-ans-{dial}",
                       "payload": {"domain_id": "d", "room": "another-apps-room", "timestamp": int(now),
                                   "session_id": dial, "user_id": "agent-7", "destination": "+12098888888"},
                       "event_ts": round(now, 3)}).encode()
    stamp = str(int(now))
    headers = {"content-type": "application/json", "x-webhook-timestamp": stamp,
               "x-webhook-signature": sign(webhook_key(SECRET), stamp, body)}
    assert await call.post(body, headers) == 200
    assert not await call.hooks.legs.answered(dial)


class _StoreOutOnce(LocalFirstClaims):
    """The replicas' store, not answering the first read of a leg's record (a blink of redis)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.blinked = False

    async def held(self, what: str) -> str | None:
        if not self.blinked and what.startswith("daily-leg-user:"):
            self.blinked = True
            raise StoreUnavailable("injected")
        return await super().held(what)


async def test_an_event_answered_503_is_delivered_again_as_dailys_exponential_retry_does(
        fake_daily: FakeDaily) -> None:
    # The route answers 503 while the store blinks (nothing kept); Daily's `exponential` retry sends it again.
    call = await _hooked(fake_daily)
    try:
        store = _StoreOutOnce(call.clock)
        call.hooks.legs = DialoutLegs(store)
        await call.hooks.legs.place(DAILY_PERSON_USER + "1" * 24)
        dial = await call.rooms.dial_out_start(SESSION, "+14155550123", DAILY_PERSON_USER + "1" * 24)
        assert await call.daily.eventually(lambda: ("dialout.connected", 200) in call.daily.sent_webhooks)
        assert ("dialout.connected", 503) in call.daily.sent_webhooks  # the first try, refused
        call.daily.answer_dial_out(dial)
        assert await call.daily.eventually(lambda: ("dialout.answered", 200) in call.daily.sent_webhooks)
        assert await call.hooks.legs.answered(dial)
        assert call.daily.dial_outs[dial]["state"] == "answered"
    finally:
        call.bot.briefing.set()
        await call.rooms.aclose()


async def test_a_background_stop_daily_refuses_is_tried_again_with_backoff(call: Hooked) -> None:
    # The replica that placed the leg is gone (its mark let go); Daily refuses the first two stops.
    user = DAILY_PERSON_USER + "3" * 24
    legs = DialoutLegs(call.claims)
    await legs.place(user)
    await legs.done(user)
    call.daily.fail(400, times=2, path_contains="/dialOut/stop")
    dial = await call.rooms.dial_out_start(SESSION, "+14155550123", user)
    call.daily.answer_dial_out(dial)
    assert await call.daily.eventually(lambda: ("dialout.answered", 200) in call.daily.sent_webhooks)
    while call.hooks._stopping:  # noqa: SLF001 - the background stops, awaited
        await asyncio.gather(*list(call.hooks._stopping))  # noqa: SLF001
    assert call.daily.dial_outs[dial]["state"] == "stopped"
    assert len(call.daily.calls_to("POST", "/dialOut/stop")) >= 3
