"""Daily's calltransfer webhooks with several regions: Daily posts every event of the domain to one URL, so the
events of a cold transfer made in region eu may land in us. us relays each to the region its session's id names
(dispatcher/phone/daily_hook_relay.py), where the transfer's record and the session's timeline are, and that region
settles and notes it (dispatcher/phone/daily_calltransfer.py). Each region is the real webhook route behind the
regions' real middleware on a loopback port (tests/support/daily_hooks_app.py); Daily is its strict fake."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest

from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.daily_calltransfer import DailyCallTransfers
from dispatcher.phone.daily_hook_relay import DailyHookRelay
from dispatcher.phone.daily_legs import DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_signature import sign, webhook_key
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.regions.signing import RELAYED_BY
from dispatcher.sessions.ids import new_session_id
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_daily_calltransfer_settle import _Timeline
from tests.dispatcher.phone.test_daily_warm import _Sessions
from tests.dispatcher.phone.test_daily_warm_regions import _reachable, _regions
from tests.fakes.daily import FakeDaily
from tests.support.daily_hooks_app import SECRET, URL, Received, region_app
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port

SESSION = new_session_id(PHONE_CALLER, "daily-dialin:regions-call", region="eu")  # eu holds the call
DESK = "+14155550123"


@dataclass
class TwoRegions:
    daily: FakeDaily
    rooms: DailyRooms
    eu: _Timeline
    us: _Timeline
    eu_claims: LocalFirstClaims
    us_received: Received
    eu_received: Received
    caller: str
    urls: dict[str, str]


@pytest.fixture
async def regions(fake_daily: FakeDaily) -> AsyncIterator[TwoRegions]:
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    await rooms.create(SESSION, 600)
    fake_daily.join(rooms.room_name(SESSION), rooms.bot_user_id(SESSION))
    caller = fake_daily.dial_in(rooms.room_name(SESSION))
    ports = {"eu": free_port(), "us": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    eu, us = _regions("eu", urls), _regions("us", urls)
    eu_claims, eu_timeline, us_timeline = LocalFirstClaims(), _Timeline(), _Timeline()
    eu_relay, us_relay = DailyHookRelay(_reachable(eu)), DailyHookRelay(_reachable(us))
    eu_app, eu_received = region_app(DailyHooks(DialoutLegs(eu_claims), stop_in_room(rooms, 1.0)), eu, eu_relay,
                                     calltransfers=DailyCallTransfers(rooms, eu_claims, eu_timeline))
    us_claims = LocalFirstClaims()
    us_app, us_received = region_app(DailyHooks(DialoutLegs(us_claims), stop_in_room(rooms, 1.0)), us, us_relay,
                                     calltransfers=DailyCallTransfers(rooms, us_claims, us_timeline))
    fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=us_app), timeout=30)
    await fake_daily.subscribe(URL, SECRET, retry_type="exponential")  # one URL for the domain: us's
    async with AsyncExitStack() as stack:
        for name, app in (("eu", eu_app), ("us", us_app)):
            await stack.enter_async_context(serving(app, ports[name]))
        yield TwoRegions(fake_daily, rooms, eu_timeline, us_timeline, eu_claims, us_received, eu_received, caller,
                         urls)
        for relay in (eu_relay, us_relay):
            await relay.aclose()
        await rooms.aclose()


async def test_a_transfer_made_in_eu_is_settled_and_noted_there_though_daily_posts_to_us(
        regions: TwoRegions) -> None:
    daily = regions.daily
    daily.pause_webhooks()
    daily.lose_transfer_answer(503)  # eu's request goes unanswered: 504, the outcome unknown in eu's store
    transfers = DailyTransfers(regions.rooms, _Sessions(), regions.eu_claims, parse_transfer_targets("+1415555*"),
                               regions.eu)
    with pytest.raises(ApiError) as unknown:
        await transfers.transfer(SESSION, TransferTarget(DESK))
    assert (unknown.value.status, unknown.value.code) == (504, "transfer_outcome_unknown")
    await daily.release_webhooks()
    daily.answer_transfer(regions.caller)
    assert await daily.eventually(lambda: ("calltransfer.answered", 200) in daily.sent_webhooks)
    assert [kind for kind, _ in daily.sent_webhooks] == [
        "calltransfer.triggered", "calltransfer.initiated", "calltransfer.answered"]
    assert {status for _, status in daily.sent_webhooks} == {200}
    assert [(how, kind) for how, kind, _ in regions.eu.events] == [
        ("note", "transferred"), ("note", "transfer_answered")]  # settled and noted where the call is
    assert regions.eu.events[0][2]["heard_from"] == "calltransfer"
    assert regions.us.events == []  # us keeps nothing of eu's session
    assert len(regions.eu_received) == 3  # each relayed once, signed
    assert (await regions.eu_claims.held(record_key(SESSION)) or "").endswith(" outcome=reconciled")


async def test_an_event_relayed_to_a_region_that_does_not_hold_its_session_is_refused_and_not_taken(
        regions: TwoRegions) -> None:
    # eu relays to us an event of eu's own session (REGIONS read differently in eu): us must neither note it nor
    # send it back, and the answer Daily gets is no 2xx, so it sends the event again once REGIONS is fixed.
    daily = regions.daily
    daily.lose_transfer_answer(503)
    daily.pause_webhooks()  # held: delivered by hand below
    transfers = DailyTransfers(regions.rooms, _Sessions(), regions.eu_claims, parse_transfer_targets("+1415555*"),
                               regions.eu)
    with pytest.raises(ApiError):
        await transfers.transfer(SESSION, TransferTarget(DESK))
    record = await regions.eu_claims.held(record_key(SESSION))
    (triggered, _) = daily.events
    body = json.dumps(triggered).encode()
    stamp = str(int(time.time()))
    headers = {"content-type": "application/json", "x-webhook-timestamp": stamp,
               "x-webhook-signature": sign(webhook_key(SECRET), stamp, body)}
    eu_relay = DailyHookRelay(_reachable(_regions("eu", regions.urls)))
    try:
        with pytest.raises(ApiError) as refused:
            await eu_relay.send("us", body, headers)
    finally:
        await eu_relay.aclose()
    assert (refused.value.status, refused.value.code) == (502, "region_refused"), refused.value
    assert "REGIONS must be the same in every region" in refused.value.message  # us's signed 409 `misrouted`
    assert len([h for h, _ in regions.us_received if RELAYED_BY in h]) == 1  # refused at once, never tried again
    assert not regions.eu_received  # us relayed nothing back
    assert regions.us.events == [] and regions.eu.events == []
    assert await regions.eu_claims.held(record_key(SESSION)) == record  # nothing settled: Daily's retry will
