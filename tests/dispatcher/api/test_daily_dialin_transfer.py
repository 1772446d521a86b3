"""A Daily dial-in call handed to a person through the dispatcher's API (`POST /sessions/{id}/transfer`):
Daily's `sipCallTransfer` with the deployment's key, for the room's SIP participant, against the strict
fake (tests/fakes/daily.py); the dial-in session made by Daily's webhook as test_daily_dialin.py makes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType, SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from botchannel.contract import RequestFailed
from botchannel.transfer import DAILY_PERSON_USER, METHOD_CALL_TRANSFER
from dispatcher.app import create_app
from dispatcher.channel.bots import BotLink
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.regions.config import Regions, parse_regions, region_tag
from dispatcher.regions.signing import RegionSigner
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import fly_harness
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.daily_hooks_app import SECRET as WEBHOOK_SECRET

KEY = "dialin-transfer-key-0123456789"
ADMIN_KEY = "dialin-transfer-admin-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SECRET = "t" * 40
CALL = {"From": "+14155550100", "To": "+14155550199", "callId": "call-9", "callDomain": "dom-9"}
TARGETS = "+1415555*,pbx.example.com"
CALLER_ID = "34b0eb2b-4f6d-41e2-8189-c836e830ffbb"  # DAILY_DIALOUT_CALLER_ID: a purchased number's id


def code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


@dataclass
class Dialin:
    http: httpx.AsyncClient
    daily: FakeDaily
    app: Any

    async def call(self) -> tuple[str, str]:
        """A dial-in call's session, its caller connected to the room: (session id, the caller's participant)."""
        answer = await self.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
        assert answer.status_code == 201, answer.text
        room = next(iter(self.daily.rooms))
        self.daily.join(room, f"bot-{answer.json()['sessionId']}")  # the bot, with its token's user
        return answer.json()["sessionId"], self.daily.dial_in(room)

    async def transfer(self, session_id: str, **body: Any) -> httpx.Response:
        return await self.http.post(f"/sessions/{session_id}/transfer", json=body, headers=ADMIN)

    async def events(self, session_id: str) -> list[dict[str, Any]]:
        timeline = self.app.state.voicefleet.sessions.timeline
        await timeline.settled()  # its writes are the background's
        return list(await timeline.read(session_id))

    def posts(self) -> list[Any]:
        return self.daily.calls_to("POST", "/sipCallTransfer")


@asynccontextmanager
async def dispatcher(fake_fly: FakeFly, fake_daily: FakeDaily, **env: str) -> AsyncIterator[Dialin]:
    settings = Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(KEY)}),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env={"DAILY_DIALIN_SECRET": SECRET, "PHONE_TRANSFER_TARGETS": TARGETS, **env},
                     machines=fly_harness(fake_fly).make(), rooms=rooms)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://calls.example.com")
    async with http:
        yield Dialin(http, fake_daily, app)
    await app.state.voicefleet.aclose()


@pytest.fixture
async def dialin(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[Dialin]:
    """A dispatcher that hears Daily's webhooks: the fake's webhook points at it, with its secret; a warm
    transfer's person sees the domain's number that DAILY_DIALOUT_CALLER_ID names."""
    fake_daily.purchased_numbers[CALLER_ID] = "+14155550199"
    async with dispatcher(fake_fly, fake_daily, DAILY_WEBHOOK_SECRET=WEBHOOK_SECRET,
                          DAILY_DIALOUT_CALLER_ID=CALLER_ID) as setup:
        fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app), timeout=10)
        await fake_daily.subscribe("https://calls.example.com/phone/daily/webhook", WEBHOOK_SECRET,
                                   retry_type="exponential")
        yield setup


async def test_a_dialin_call_is_handed_to_a_number_by_dailys_sip_call_transfer(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    answer = await dialin.transfer(session_id, to="+14155550123", mode="cold")
    assert answer.status_code == 200, answer.text
    assert answer.json() | {"at": 0} == {"session_id": session_id, "to": "+14155550123", "mode": "cold", "at": 0,
                                         "carrier": "daily", "carrier_status": "accepted", "status": "transferred"}
    (post,) = dialin.posts()
    assert post.headers["authorization"] == f"Bearer {dialin.daily.api_key}"  # the deployment's own key
    # The person sees the deployment's number (DAILY_DIALOUT_CALLER_ID), as a warm transfer's person does.
    assert post.json() == {"sessionId": caller, "toEndPoint": "+14155550123", "callerId": CALLER_ID}
    assert [t["room"] for t in dialin.daily.transfers] == list(dialin.daily.rooms)
    noted = [e for e in await dialin.events(session_id) if e.get("event") == "transferred"]
    assert len(noted) == 1 and noted[0]["carrier"] == "daily" and noted[0]["to"] == "+14155550123"


async def test_a_second_transfer_of_the_same_call_is_refused_without_asking_daily(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    assert (await dialin.transfer(session_id, to="sip:desk@pbx.example.com")).status_code == 200
    again = await dialin.transfer(session_id, to="+14155550123")
    assert (again.status_code, code(again)) == (409, "already_transferring")
    (post,) = dialin.posts()
    assert "callerId" not in post.json()  # a SIP URI is called from no number (Daily refuses one: 400)


async def test_warm_is_refused_with_why_without_dailys_webhooks_to_tell_an_answer_from_a_ring(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    async with dispatcher(fake_fly, fake_daily) as unhooked:  # no DAILY_WEBHOOK_SECRET
        session_id, _ = await unhooked.call()
        answer = await unhooked.transfer(session_id, to="+14155550123", mode="warm")
        assert (answer.status_code, code(answer)) == (409, "warm_unsupported"), answer.text
        assert "DAILY_WEBHOOK_SECRET" in answer.text and "cold" in answer.text
        assert fake_daily.calls_to("POST", "/dialOut/start") == [] and unhooked.posts() == []  # nothing asked


async def test_warm_dials_the_person_into_the_room_and_bridges_them_once_briefed(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    room = next(iter(dialin.daily.rooms))
    assert dialin.daily.rooms[room]["config"]["enable_dialout"] is True  # or Daily refuses the dial-out

    async def person_answers() -> str:
        assert await dialin.daily.eventually(lambda: bool(dialin.daily.ringing(room)))
        return dialin.daily.answer_dial_out(dialin.daily.ringing(room)[0])

    answering = asyncio.create_task(person_answers())
    answer = await dialin.transfer(session_id, to="+14155550123", mode="warm")
    assert answer.status_code == 200, answer.text
    person = await answering
    assert answer.json() | {"at": 0} == {"session_id": session_id, "to": "+14155550123", "mode": "warm", "at": 0,
                                         "carrier": "daily", "carrier_status": "warm", "status": "transferred"}
    (start,) = dialin.daily.calls_to("POST", "/dialOut/start")
    assert start.headers["authorization"] == f"Bearer {dialin.daily.api_key}"  # the deployment's key, not the bot's
    assert start.json()["phoneNumber"] == "+14155550123"
    assert start.json()["callerId"] == CALLER_ID  # the person sees the deployment's number, not Daily's pick
    bot = f"bot-{session_id}"
    heard = dialin.daily.permissions[room]  # the last word: both hear each other and no longer the bot
    assert heard[person]["canReceive"] == heard[caller]["canReceive"] == {"base": True, "byUserId": {bot: False}}
    briefing = dialin.daily.calls_to("POST", "/update-permissions")[0].json()["data"]
    assert briefing[person] == briefing[caller] == {"canReceive": {"base": False, "byUserId": {bot: True}}}
    assert dialin.posts() == []  # no sipCallTransfer: the call stays in the room
    noted = [e for e in await dialin.events(session_id) if e.get("event") == "transferred"]
    assert len(noted) == 1 and noted[0]["mode"] == "warm" and noted[0]["carrier_status"] == "warm"


async def test_a_caller_id_daily_refuses_is_said_and_the_caller_stays_with_the_bot(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    """An id that is none of the domain's purchased numbers (another domain's, a deleted number's): Daily
    refuses the start, nobody rings, and the answer names the setting, never a 500."""
    async with dispatcher(fake_fly, fake_daily, DAILY_WEBHOOK_SECRET=WEBHOOK_SECRET,
                          DAILY_DIALOUT_CALLER_ID=CALLER_ID) as unbought:  # fake_daily bought no number
        session_id, _ = await unbought.call()
        answer = await unbought.transfer(session_id, to="+14155550123", mode="warm")
        assert (answer.status_code, code(answer)) == (502, "carrier_refused"), answer.text
        assert "DAILY_DIALOUT_CALLER_ID" in answer.text and "/purchased-phone-numbers" in answer.text
        assert "caller is still with the bot" in answer.text
        assert fake_daily.dial_outs == {}  # nobody rings
        # The transfer's claim was given back: another one of the call is asked of Daily. Cold to a number, it
        # shows the same id, and is refused the same way; to a SIP address, it shows none, and is made.
        cold = await unbought.transfer(session_id, to="+14155550123", mode="cold")
        assert (cold.status_code, code(cold)) == (502, "carrier_refused"), cold.text
        assert "DAILY_DIALOUT_CALLER_ID" in cold.text and "caller is still with the bot" in cold.text
        again = await unbought.transfer(session_id, to="sip:desk@pbx.example.com", mode="cold")
        assert again.status_code == 200, again.text


SEVERAL = {"REGION": "eu", "REGIONS": "eu=https://eu.voice.example.com,us=https://us.voice.example.com",
           "REGION_SECRET": "daily-warm-regions-secret-0123456789"}


async def us_answered(eu: Any, state: dict[str, Any]) -> None:
    """What eu's poll of us's `GET /regions/state` hands every reader once us's signature is checked."""
    peers = eu.app.state.voicefleet.peers
    for listener in peers.answer_listeners:
        await listener(peers.by_name["us"], {"region": "us", **state})


async def test_with_several_regions_warm_is_refused_until_every_region_says_it_relays_dailys_events_here(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    """A region that does not relay (not heard from yet, a release before the relay, or a REGIONS without eu)
    would answer the leg's events "ignored" where Daily's webhook lands there: the person's answer would be lost."""
    async with dispatcher(fake_fly, fake_daily, DAILY_WEBHOOK_SECRET=WEBHOOK_SECRET, **SEVERAL) as eu:
        eu.app.state.voicefleet.peers.by_name["us"].problem = "down"  # as its polling found it: eu takes the call
        session_id, _ = await eu.call()
        for said in (None, {"regions": SEVERAL["REGIONS"]},
                     {"regions": "us=https://us.voice.example.com", "daily_relay": True}):
            if said is not None:
                await us_answered(eu, said)
            answer = await eu.transfer(session_id, to="+14155550123", mode="warm")
            assert (answer.status_code, code(answer)) == (409, "warm_unsupported"), (said, answer.text)
            assert "region us" in answer.text and "cold" in answer.text, answer.text
        assert fake_daily.calls_to("POST", "/dialOut/start") == []  # nobody was called


async def test_with_several_regions_warm_calls_the_person_with_the_regions_tag_and_bridges_them(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    # The leg's userId names the region whose store placed it: where Daily's one webhook lands, the event is
    # relayed there (tests/dispatcher/phone/test_daily_warm_regions.py); here it lands in that region itself.
    async with dispatcher(fake_fly, fake_daily, DAILY_WEBHOOK_SECRET=WEBHOOK_SECRET, **SEVERAL) as eu:
        fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=eu.app), timeout=10)
        await fake_daily.subscribe("https://eu.voice.example.com/phone/daily/webhook", WEBHOOK_SECRET,
                                   retry_type="exponential")
        eu.app.state.voicefleet.peers.by_name["us"].problem = "down"  # as its polling found it: eu takes the call
        await us_answered(eu, {"regions": SEVERAL["REGIONS"], "daily_relay": True})  # us relays eu's events
        session_id, _ = await eu.call()
        room = next(iter(fake_daily.rooms))

        async def person_answers() -> str:
            assert await fake_daily.eventually(lambda: bool(fake_daily.ringing(room)))
            return fake_daily.answer_dial_out(fake_daily.ringing(room)[0])

        answering = asyncio.create_task(person_answers())
        answer = await eu.transfer(session_id, to="+14155550123", mode="warm")
        await answering
        assert answer.status_code == 200, answer.text
        assert (answer.json()["mode"], answer.json()["status"]) == ("warm", "transferred")
        (start,) = fake_daily.calls_to("POST", "/dialOut/start")
        assert start.json()["userId"].startswith(DAILY_PERSON_USER + region_tag("eu"))


async def test_a_target_off_the_allow_list_is_refused_before_daily_is_asked(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    answer = await dialin.transfer(session_id, to="+19005550100")
    assert (answer.status_code, code(answer)) == (403, "target_not_allowed")
    assert dialin.posts() == []


async def test_a_call_not_yet_in_the_room_is_refused_then_transferred_once_it_is(dialin: Dialin) -> None:
    answer = await dialin.http.post(f"/phone/daily/dialin/{SECRET}", json=CALL)
    session_id = answer.json()["sessionId"]
    early = await dialin.transfer(session_id, to="+14155550123")
    assert (early.status_code, code(early)) == (409, "no_live_call")
    dialin.daily.dial_in(next(iter(dialin.daily.rooms)))
    assert (await dialin.transfer(session_id, to="+14155550123")).status_code == 200  # the refusal held nothing


async def test_an_unanswered_transfer_is_never_sent_again_and_said_unknown(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.fail(503, method="POST", path_contains="/sipCallTransfer")
    answer = await dialin.transfer(session_id, to="+14155550123")
    assert (answer.status_code, code(answer)) == (504, "transfer_outcome_unknown")
    assert answer.json()["error"]["outcome"] == "unknown"
    again = await dialin.transfer(session_id, to="+14155550123")
    assert (again.status_code, code(again)) == (409, "already_transferring")
    assert len(dialin.posts()) == 1


async def test_dailys_throttle_is_tried_again_and_then_taken(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.fail(429, method="POST", path_contains="/sipCallTransfer", retry_after=0.1)
    answer = await dialin.transfer(session_id, to="+14155550123")
    assert answer.status_code == 200, answer.text
    assert len(dialin.posts()) == 2 and len(dialin.daily.transfers) == 1


async def test_dailys_refusal_is_answered_without_its_words_and_a_retry_may_follow(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.fail(400, method="POST", path_contains="/sipCallTransfer",
                      body={"error": "invalid-request-error", "info": "account acct-secret-123 cannot dial"})
    answer = await dialin.transfer(session_id, to="+14155550123")
    assert (answer.status_code, code(answer)) == (502, "carrier_refused")
    assert "acct-secret-123" not in answer.text
    assert (await dialin.transfer(session_id, to="+14155550123")).status_code == 200


async def test_a_plain_daily_session_still_has_no_phone_line_to_hand_over(dialin: Dialin) -> None:
    started = await dialin.http.post("/start", json={}, headers={"Authorization": f"Bearer {KEY}"})
    assert started.status_code == 201, started.text
    answer = await dialin.http.post(f"/sessions/{started.json()['session_id']}/transfer", json={"to": "+14155550123"},
                                    headers={"Authorization": f"Bearer {KEY}"})
    assert (answer.status_code, code(answer)) == (409, "transfer_unsupported")
    assert dialin.posts() == []


async def test_the_bot_hands_its_own_call_over_its_channel(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    ask = dialin.app.state.voicefleet.channels.methods[METHOD_CALL_TRANSFER]
    link = cast(BotLink, SimpleNamespace(session_id=session_id))  # what the channel knows of the asking bot
    with pytest.raises(RequestFailed) as bad:
        await ask(link, {"to": "+19005550100"})
    assert (bad.value.status, bad.value.code) == (403, "target_not_allowed")
    answer = await ask(link, {"to": "+14155550123"})
    assert answer["status"] == "transferred" and answer["carrier"] == "daily"
    assert [p.json()["sessionId"] for p in dialin.posts()] == [caller]  # the room's caller, read by the dispatcher


async def test_two_tokenless_participants_are_no_caller_to_guess_between(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.dial_in(next(iter(dialin.daily.rooms)), "someone else")
    answer = await dialin.transfer(session_id, to="+14155550123")
    assert (answer.status_code, code(answer)) == (409, "call_not_verified")
    assert dialin.posts() == []


@pytest.mark.parametrize("hooked", [True, False])
async def test_a_region_says_in_its_state_whether_it_relays_dailys_events(fake_fly: FakeFly, fake_daily: FakeDaily,
                                                                        hooked: bool) -> None:
    """What the other regions' warm transfers wait for: only a region that hears Daily's webhooks relays them."""
    hooks = {"DAILY_WEBHOOK_SECRET": WEBHOOK_SECRET} if hooked else {}
    async with dispatcher(fake_fly, fake_daily, **hooks, **SEVERAL) as eu:
        us = RegionSigner(Regions("us", MappingProxyType(parse_regions(SEVERAL["REGIONS"])),
                                  SEVERAL["REGION_SECRET"].encode()))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=eu.app), base_url="http://eu") as client:
            answer = await client.get("/regions/state", headers=us.headers("eu", "GET", "/regions/state"))
    assert answer.status_code == 200, answer.text
    assert answer.json().get("daily_relay") is (True if hooked else None), answer.json()
