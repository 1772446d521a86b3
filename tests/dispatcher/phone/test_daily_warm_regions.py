"""A Daily warm transfer with several regions: Daily posts every `dialout.*` webhook of the domain to one URL, so
the person's answer may land in a region whose store did not place the leg. That region relays it, signed, to the
region whose tag the leg's `userId` carries, which keeps it as if Daily had posted it there
(dispatcher/phone/daily_hook_relay.py, dispatcher/phone/daily_leg_owner.py).

Region eu holds the call (its store, its `DailyWarm`); Daily's webhook reaches region us. Each region is the real
webhook route behind the regions' real middleware (tests/support/daily_hooks_app.py), served on a loopback port in
this test's loop and asked over it by the other's real relay; Daily is its strict fake, posting to us in-process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyRooms
from dispatcher.phone import daily_hook_relay
from dispatcher.phone.daily_hook_relay import ATTEMPTS, WEBHOOK_PATH, DailyHookRelay
from dispatcher.phone.daily_leg_owner import leg_user
from dispatcher.phone.daily_legs import DailyHooks, DialoutLegs, stop_in_room
from dispatcher.phone.daily_signature import sign, webhook_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.daily_warm import DailyWarm
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.regions.config import Regions, region_tag
from dispatcher.regions.peers import Peers
from dispatcher.regions.signing import ANSWER_SIGNATURE, RELAYED_BY
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_daily_warm import DESK, SESSION, WARM, Bot, _Sessions, dialin_call
from tests.fakes.daily import FakeDaily
from tests.support.daily_hooks_app import SECRET, URL, Received, region_app
from tests.support.dispatcher_server import serving
from tests.support.ports import free_port

REGION_SECRET = "daily-relay-region-secret-0123456789"


@dataclass
class TwoRegions:
    daily: FakeDaily
    rooms: DailyRooms
    eu_legs: DialoutLegs  # the store of the region that holds the call and places its legs
    us_legs: DialoutLegs  # the store of the region Daily's webhook reaches
    eu_received: Received
    us_received: Received
    us_peers: Peers
    eu_app: Any
    us_app: Any
    transfers: DailyTransfers
    bot: Bot
    room: str
    urls: dict[str, str]

    async def to_us(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """A request at us's webhook URL, as Daily (or anyone) sends it."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.us_app), timeout=30) as client:
            return await client.post(URL, content=body, headers=headers)


def _regions(here: str, urls: dict[str, str], secret: str = REGION_SECRET) -> Regions:
    return Regions(here, MappingProxyType(urls), secret.encode())


def _reachable(regions: Regions) -> Peers:
    """The peers as this region's polling found them: answering."""
    peers = Peers(regions)
    for peer in peers.by_name.values():
        peer.reachable = True
    return peers


@pytest.fixture
async def regions(fake_daily: FakeDaily) -> AsyncIterator[TwoRegions]:
    rooms, room, _ = await dialin_call(fake_daily)
    ports = {"eu": free_port(), "us": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    eu, us = _regions("eu", urls), _regions("us", urls)
    eu_claims, bot = LocalFirstClaims(), Bot()
    eu_legs, us_legs = DialoutLegs(eu_claims), DialoutLegs(LocalFirstClaims())
    eu_relay, us_relay = DailyHookRelay(_reachable(eu)), DailyHookRelay(us_peers := _reachable(us))
    eu_app, eu_received = region_app(DailyHooks(eu_legs, stop_in_room(rooms, 1.0)), eu, eu_relay)
    us_app, us_received = region_app(DailyHooks(us_legs, stop_in_room(rooms, 1.0)), us, us_relay)
    fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=us_app), timeout=30)
    await fake_daily.subscribe(URL, SECRET, retry_type="exponential")  # one URL for the domain: us's
    warm = DailyWarm(rooms, bot.ask, eu_legs, ring_seconds=5.0, poll_seconds=0.02, watch_seconds=0.05,
                     region_tag=region_tag("eu"))
    transfers = DailyTransfers(rooms, _Sessions(), eu_claims, parse_transfer_targets("+1415555*"), None, warm=warm)
    async with AsyncExitStack() as stack:
        for name, app in (("eu", eu_app), ("us", us_app)):
            await stack.enter_async_context(serving(app, ports[name]))
        yield TwoRegions(fake_daily, rooms, eu_legs, us_legs, eu_received, us_received, us_peers, eu_app,
                         us_app, transfers, bot, room, urls)
        bot.briefing.set()
        for relay in (eu_relay, us_relay):
            await relay.aclose()
        await rooms.aclose()


def _daily_signed(kind: str, dial: str, room: str, user: str) -> tuple[bytes, dict[str, str]]:
    """A `dialout.*` event as Daily signs it (its documented payload)."""
    now = time.time()
    body = json.dumps({"version": "1.0.0", "type": kind, "id": f"{kind}-{dial}",
                       "payload": {"domain_id": "d", "room": room, "timestamp": int(now), "session_id": dial,
                                   "user_id": user, "destination": DESK},
                       "event_ts": round(now, 3)}).encode()
    stamp = str(int(now))
    return body, {"content-type": "application/json", "x-webhook-timestamp": stamp,
                  "x-webhook-signature": sign(webhook_key(SECRET), stamp, body)}


class _StoreOut(LocalFirstClaims):
    """A region's store that does not answer (a redis outage)."""

    async def held(self, what: str) -> str | None:
        raise StoreUnavailable("injected")


def _relayed(received: Received) -> list[tuple[dict[str, str], bytes]]:
    return [(headers, body) for headers, body in received if RELAYED_BY in headers]


async def test_an_answer_landing_in_another_region_is_relayed_and_the_warm_transfer_bridges(
        regions: TwoRegions) -> None:
    task = asyncio.create_task(regions.transfers.transfer(SESSION, WARM))
    assert await regions.daily.eventually(lambda: bool(regions.daily.ringing(regions.room)))
    dial = regions.daily.ringing(regions.room)[0]
    regions.daily.answer_dial_out(dial)
    assert await regions.daily.eventually(regions.bot.briefed.is_set)
    regions.bot.briefing.set()
    answer = await task
    assert answer is not None and (answer["mode"], answer["status"]) == ("warm", "transferred")
    assert await regions.daily.eventually(lambda: ("dialout.answered", 200) in regions.daily.sent_webhooks)
    assert await regions.eu_legs.answered(dial) and not await regions.us_legs.answered(dial)  # kept at the owner
    relayed = _relayed(regions.eu_received)
    assert relayed and all(headers[RELAYED_BY] == "us" for headers, _ in relayed)
    # A dial-out that is no transfer's (another application's) is nobody's to relay: answered 200 where it lands.
    body, headers = _daily_signed("dialout.answered", "other-app-leg", "another-apps-room", "agent-7")
    before = len(regions.eu_received)
    refused = await regions.to_us(body, headers)
    assert (refused.status_code, refused.json()["status"]) == (200, "ignored")
    assert len(regions.eu_received) == before


async def test_a_captured_relay_replayed_or_altered_is_refused_and_keeps_nothing(regions: TwoRegions) -> None:
    user = leg_user(region_tag("eu"))
    await regions.eu_legs.place(user)  # eu's transfer, waiting on its leg
    dial = await regions.rooms.dial_out_start(SESSION, DESK, user)
    regions.daily.answer_dial_out(dial)
    assert await regions.daily.eventually(lambda: ("dialout.answered", 200) in regions.daily.sent_webhooks)
    assert await regions.eu_legs.answered(dial)
    headers, body = next((h, b) for h, b in _relayed(regions.eu_received) if json.loads(b)["type"] ==
                         "dialout.answered")
    sent = {name: value for name, value in headers.items() if name not in ("host", "content-length")}
    async with httpx.AsyncClient(timeout=10) as client:
        replayed = await client.post(regions.urls["eu"] + WEBHOOK_PATH, content=body, headers=sent)
        other = json.dumps({**json.loads(body), "payload": {**json.loads(body)["payload"],
                                                            "session_id": "another-leg"}}).encode()
        altered = await client.post(regions.urls["eu"] + WEBHOOK_PATH, content=other, headers=sent)
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (401, "region_unauthenticated")
    assert "replay" in replayed.json()["error"]["message"]
    assert (altered.status_code, altered.json()["error"]["code"]) == (401, "region_unauthenticated")
    assert not await regions.eu_legs.answered("another-leg")


async def test_an_owner_that_does_not_answer_is_503_and_dailys_retry_delivers_it_once_it_does(
        regions: TwoRegions) -> None:
    eu = regions.us_peers.by_name["eu"]
    eu.url = f"http://127.0.0.1:{free_port()}"  # nobody listens there: every try is refused
    user = leg_user(region_tag("eu"))
    await regions.eu_legs.place(user)
    dial = await regions.rooms.dial_out_start(SESSION, DESK, user)
    regions.daily.answer_dial_out(dial)
    assert await regions.daily.eventually(lambda: ("dialout.answered", 503) in regions.daily.sent_webhooks)
    assert not await regions.us_legs.answered(dial) and not await regions.eu_legs.answered(dial)
    eu.url = regions.urls["eu"]  # eu answers again
    assert await regions.daily.eventually(lambda: ("dialout.answered", 200) in regions.daily.sent_webhooks,
                                          timeout=15)
    assert await regions.eu_legs.answered(dial) and not await regions.us_legs.answered(dial)


async def test_an_owner_whose_store_is_out_is_tried_a_bounded_number_of_times_then_daily_is_answered_503(
        regions: TwoRegions) -> None:
    regions.eu_app.state.voicefleet.phone.daily_hooks.legs = DialoutLegs(_StoreOut())  # eu answers 503 each try
    body, headers = _daily_signed("dialout.answered", "blinking-leg", regions.room, leg_user(region_tag("eu")))
    answer = await regions.to_us(body, headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "region_unreachable")
    assert "send it again" in answer.json()["error"]["message"] and answer.headers.get("retry-after")
    assert len(_relayed(regions.eu_received)) == ATTEMPTS  # each a fresh signature: none refused as a replay
    eu = regions.us_peers.by_name["eu"]
    eu.reachable, eu.problem = False, "no answer within 1 s"  # its polling found it down: no try is made
    again = await regions.to_us(body, headers)
    assert (again.status_code, len(_relayed(regions.eu_received))) == (503, ATTEMPTS)


async def test_a_relayed_event_of_a_third_regions_leg_is_refused_never_relayed_again(regions: TwoRegions) -> None:
    # eu relays to us an event whose leg carries eu's own tag (REGIONS read differently): us must not send it back.
    user = leg_user(region_tag("eu"))
    body, headers = _daily_signed("dialout.answered", "looping-leg", regions.room, user)
    eu_relay = DailyHookRelay(_reachable(_regions("eu", regions.urls)))
    try:
        with pytest.raises(ApiError) as refused:  # never a 2xx to Daily for an event nobody handled
            await eu_relay.send("us", body, headers)
    finally:
        await eu_relay.aclose()
    assert (refused.value.status, refused.value.code) == (502, "region_refused"), refused.value
    assert "REGIONS must be the same in every region" in refused.value.message  # us's signed 409 `misrouted`
    assert not regions.eu_received  # us relayed nothing back
    assert not await regions.us_legs.answered("looping-leg")


async def test_an_owner_that_refuses_the_relay_is_answered_502_naming_the_fix(regions: TwoRegions) -> None:
    # us signs with another REGION_SECRET than eu's: eu refuses every relay, which no retry changes.
    stranger = DailyHookRelay(_reachable(_regions("us", regions.urls, "another-region-secret-0123456789abc")))
    regions.us_app.state.voicefleet.phone.daily_relay = stranger
    user = leg_user(region_tag("eu"))
    await regions.eu_legs.place(user)
    body, headers = _daily_signed("dialout.answered", "refused-leg", regions.room, user)
    try:
        answer = await regions.to_us(body, headers)
    finally:
        await stranger.aclose()
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "region_refused")
    assert "REGION_SECRET" in answer.json()["error"]["message"]
    assert len(_relayed(regions.eu_received)) == 1  # a refusal is not asked again
    assert not await regions.eu_legs.answered("refused-leg")
    assert ANSWER_SIGNATURE not in answer.headers


async def test_events_past_the_bound_on_their_way_to_one_region_are_answered_503_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An owner that takes connections and never answers holds each relay its whole ~7 s: past MAX_IN_FLIGHT of
    them, Daily is answered 503 at once (its retry comes back later) rather than piling up requests."""
    monkeypatch.setattr(daily_hook_relay, "MAX_IN_FLIGHT", 1)
    held: list[asyncio.StreamWriter] = []

    async def never_answers(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    urls = {"eu": "http://127.0.0.1:9", "us": f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"}
    relay = DailyHookRelay(_reachable(_regions("eu", urls)))
    body, headers = _daily_signed("dialout.answered", "held-leg", "room", leg_user(region_tag("us")))
    first = asyncio.create_task(relay.send("us", body, headers))
    try:
        async with asyncio.timeout(5):
            while not held:  # the first relay is on its way, its connection held
                await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ApiError) as busy:
            await relay.send("us", body, headers)
        assert (busy.value.status, busy.value.code) == (503, "region_busy"), busy.value
        assert time.monotonic() - started < 1.0  # at once, not after the first one's tries
        assert "127.0.0.1" not in busy.value.message  # nothing of the regions told Daily
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await relay.aclose()
        server.close()
        for writer in held:
            writer.close()
