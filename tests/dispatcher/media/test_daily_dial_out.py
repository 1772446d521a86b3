"""Daily's dial-out and permission updates, by the Daily client against the strict fake, and the fake held to
Daily's documented bodies (docs.daily.co, REST API, rooms: "Room Dial Out Start", "Update Permissions"; daily-js
`stopDialOut()` for the stop's errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dispatcher.media.daily import DailyError, DailyRefused, DailyRooms, DailySettings
from dispatcher.media.room_options import RoomOptions
from tests.fakes.daily import API_KEY, FakeDaily

SID = "0123456789abcdef01234567"
ROOM = f"vf-{SID}"
CALLER_ID = "34b0eb2b-4f6d-41e2-8189-c836e830ffbb"  # a purchased number's id (Daily's documented example)
DIAL_IN = RoomOptions(room={"sip": {"sip_mode": "dial-in", "num_endpoints": 1}, "enable_dialout": True})


@pytest.fixture
async def rooms(fake_daily: FakeDaily) -> AsyncIterator[DailyRooms]:
    client = DailyRooms(DailySettings.from_env(fake_daily.env))
    await client.create(SID, 600, DIAL_IN)
    yield client
    await client.aclose()


async def post(fake: FakeDaily, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{fake.url}/rooms/{ROOM}/{path}", json=body,
                               headers={"Authorization": f"Bearer {API_KEY}"})


async def test_the_person_is_dialled_joins_on_answering_and_is_stopped(
        rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    dial = await rooms.dial_out_start(SID, "+14155550123", "transfer-1")
    assert fake_daily.dial_outs[dial] | {"state": ""} == {"room": ROOM, "state": "", "phoneNumber": "+14155550123",
                                                        "userId": "transfer-1", "displayName": "transfer"}
    assert await rooms.presence(SID) == []  # ringing: not in the room yet
    fake_daily.answer_dial_out(dial)
    assert [(p["id"], p["userId"]) for p in await rooms.presence(SID) or ()] == [(dial, "transfer-1")]
    assert await rooms.dial_out_stop(SID, dial) is True
    assert await rooms.presence(SID) == []
    assert await rooms.dial_out_stop(SID, dial) is False  # over already: Daily's 404


async def test_a_sip_target_is_dialled_by_its_uri(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    dial = await rooms.dial_out_start(SID, "sip:desk@pbx.example.com", "transfer-2")
    assert fake_daily.dial_outs[dial]["sipUri"] == "sip:desk@pbx.example.com"


async def test_a_number_is_called_from_the_purchased_number_the_caller_id_names(
        rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.purchased_numbers[CALLER_ID] = "+14155550199"
    dial = await rooms.dial_out_start(SID, "+14155550123", "transfer-5", CALLER_ID)
    assert fake_daily.dial_outs[dial]["callerId"] == CALLER_ID
    unset = await rooms.dial_out_start(SID, "+14155550124", "transfer-6")
    assert "callerId" not in fake_daily.dial_outs[unset]  # Daily's pick of the domain's numbers


async def test_a_sip_target_is_never_sent_a_caller_id(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.purchased_numbers[CALLER_ID] = "+14155550199"
    dial = await rooms.dial_out_start(SID, "sip:desk@pbx.example.com", "transfer-7", CALLER_ID)
    assert fake_daily.dial_outs[dial]["sipUri"] == "sip:desk@pbx.example.com"
    assert "callerId" not in fake_daily.dial_outs[dial]  # a number the PSTN shows; Daily refuses it with a URI


async def test_a_caller_id_that_is_none_of_the_domains_numbers_is_refused_and_nothing_rings(
        rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.purchased_numbers[CALLER_ID] = "+14155550199"
    for wrong in ("0f0e0d0c-0b0a-4908-8706-050403020100", "+14155550199"):  # another id, or the number itself
        with pytest.raises(DailyRefused) as refused:
            await rooms.dial_out_start(SID, "+14155550123", "transfer-8", wrong)
        assert (refused.value.status, refused.value.kind) == (400, "invalid-request-error")
    assert fake_daily.dial_outs == {}


async def test_a_room_without_dial_out_refuses_it(fake_daily: FakeDaily) -> None:
    client = DailyRooms(DailySettings.from_env(fake_daily.env))
    try:
        await client.create(SID, 600)
        with pytest.raises(DailyRefused) as refused:
            await client.dial_out_start(SID, "+14155550123", "transfer-3")
    finally:
        await client.aclose()
    assert refused.value.status == 400 and fake_daily.dial_outs == {}


async def test_an_unanswered_start_is_sent_once(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.fail(502, method="POST", path_contains="/dialOut/start")
    with pytest.raises(DailyError) as failed:
        await rooms.dial_out_start(SID, "+14155550123", "transfer-4")
    assert failed.value.reason == "daily_unavailable" and not failed.value.nothing_sent
    assert len(fake_daily.calls_to("POST", "/dialOut/start")) == 1


async def test_permissions_are_set_for_participants_in_the_room(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    caller = fake_daily.dial_in(ROOM)
    await rooms.update_permissions(SID, {caller: {"canReceive": {"base": False, "byUserId": {f"bot-{SID}": True}}}})
    assert fake_daily.permissions[ROOM][caller] == {"canReceive": {"base": False, "byUserId": {f"bot-{SID}": True}}}
    with pytest.raises(DailyRefused) as refused:
        await rooms.update_permissions(SID, {"gone": {"canSend": False}})
    assert refused.value.status == 404


@pytest.mark.parametrize(("path", "body"), [
    ("dialOut/start", {"phoneNumber": "+14155550123", "sipUri": "sip:a@b.example.com"}),  # one, not both
    ("dialOut/start", {}),
    ("dialOut/start", {"phoneNumber": "14155550123"}),  # no +
    ("dialOut/start", {"phoneNumber": "+14155550123", "userId": "u" * 37}),
    ("dialOut/start", {"phoneNumber": "+14155550123", "ringSeconds": 12}),  # no such field
    ("dialOut/start", {"phoneNumber": "+14155550123", "callerId": "+14155550199"}),  # a number, not its id
    ("dialOut/start", {"sipUri": "sip:a@b.example.com", "callerId": CALLER_ID}),  # PSTN only
    ("dialOut/stop", {}),
    ("update-permissions", {"data": {"*": {"canHear": True}}}),
    ("update-permissions", {"data": {"*": {"canReceive": {"byUserId": {}}}}}),  # base is required
    ("update-permissions", {"data": {"*": {"canReceive": {"base": "yes"}}}}),
    ("update-permissions", {"participants": {}}),
])
async def test_the_fake_refuses_what_daily_documents_no_place_for(rooms: DailyRooms, fake_daily: FakeDaily,
                                                                  path: str, body: dict[str, Any]) -> None:
    fake_daily.purchased_numbers[CALLER_ID] = "+14155550199"  # refused for what else the body holds
    answer = await post(fake_daily, path, body)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid-request-error"
