"""Daily's call transfer (`sipCallTransfer`) and room presence, by the Daily client against the strict fake,
and the fake held to Daily's documented bodies (docs.daily.co, REST API, rooms: "Room SIP Call Transfer",
"Room SIP Refer", "Get Room Presence")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dispatcher.media.daily import DailyError, DailyRefused, DailyRooms, DailySettings
from tests.fakes.daily import API_KEY, FakeDaily

SID = "0123456789abcdef01234567"
ROOM = f"vf-{SID}"


@pytest.fixture
async def rooms(fake_daily: FakeDaily) -> AsyncIterator[DailyRooms]:
    client = DailyRooms(DailySettings.from_env(fake_daily.env))
    await client.create(SID, 600)
    yield client
    await client.aclose()


async def post(fake: FakeDaily, path: str, body: Any, key: str | None = API_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx.AsyncClient() as http:
        return await http.post(f"{fake.url}/rooms/{ROOM}/{path}", json=body, headers=headers)


async def test_the_caller_is_transferred_and_leaves_the_room(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    fake_daily.join(ROOM, f"bot-{SID}")
    caller = fake_daily.dial_in(ROOM)
    present = await rooms.presence(SID)
    assert present is not None
    assert [p["id"] for p in present if p["userId"] == p["id"]] == [caller]  # no token: Daily's default user id
    await rooms.sip_call_transfer(SID, caller, "sip:desk@pbx.example.com")
    assert fake_daily.transfers == [{"room": ROOM, "how": "sipCallTransfer", "sessionId": caller,
                                     "toEndPoint": "sip:desk@pbx.example.com"}]
    assert [p["userId"] for p in await rooms.presence(SID) or ()] == [f"bot-{SID}"]


async def test_a_participant_gone_is_dailys_not_found(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    with pytest.raises(DailyRefused) as refused:
        await rooms.sip_call_transfer(SID, "no-such-participant", "+14155550123")
    assert (refused.value.status, refused.value.kind) == (404, "not-found")


async def test_no_room_has_no_presence(rooms: DailyRooms) -> None:
    assert await rooms.presence("fedcba9876543210fedcba98") is None


async def test_an_unanswered_transfer_is_sent_once(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    caller = fake_daily.dial_in(ROOM)
    fake_daily.fail(502, method="POST", path_contains="/sipCallTransfer")
    with pytest.raises(DailyError) as failed:
        await rooms.sip_call_transfer(SID, caller, "+14155550123")
    assert failed.value.reason == "daily_unavailable"
    assert len(fake_daily.calls_to("POST", "/sipCallTransfer")) == 1


@pytest.mark.parametrize(("path", "body", "status", "why"), [
    ("sipCallTransfer", {"sessionId": "{caller}", "to": "+14155550123"}, 400, "unknown field: to"),
    ("sipCallTransfer", {"sessionId": "{caller}"}, 400, "required"),
    ("sipCallTransfer", {"sessionId": "{caller}", "toEndPoint": "4155550123"}, 400, "not a SIP URI"),
    ("sipCallTransfer", {"sessionId": "{caller}", "toEndPoint": "sip:a@b.example.com", "callerId": "x"}, 400,
     "only valid with a phone number"),
    ("sipCallTransfer", {"sessionId": "{bot}", "toEndPoint": "+14155550123"}, 404, "no SIP participant"),
    ("sipRefer", {"sessionId": "{caller}", "toEndPoint": "+14155550123"}, 400, "not a SIP URI"),
    ("sipRefer", {"sessionId": "{caller}", "toEndPoint": "sip:a@b.example.com", "callerId": "x"}, 400,
     "unknown field: callerId"),
])
async def test_the_fake_refuses_what_daily_refuses(rooms: DailyRooms, fake_daily: FakeDaily, path: str,
                                                   body: dict[str, str], status: int, why: str) -> None:
    fake_daily.join(ROOM, f"bot-{SID}")
    ids = {"{caller}": fake_daily.dial_in(ROOM), "{bot}": f"p-bot-{SID}"}
    answer = await post(fake_daily, path, {k: ids.get(v, v) for k, v in body.items()})
    assert answer.status_code == status
    assert answer.json()["error"] == ("not-found" if status == 404 else "invalid-request-error")
    assert why in answer.json()["info"]
    assert fake_daily.transfers == []


@pytest.mark.parametrize(("key", "status"), [(None, 400), ("wrong-key", 401)])
async def test_the_fake_takes_the_deployments_key_alone(rooms: DailyRooms, fake_daily: FakeDaily, key: str | None,
                                                        status: int) -> None:
    caller = fake_daily.dial_in(ROOM)
    answer = await post(fake_daily, "sipCallTransfer", {"sessionId": caller, "toEndPoint": "+14155550123"}, key)
    assert answer.status_code == status and fake_daily.transfers == []


async def test_a_refer_to_a_sip_uri_is_taken(rooms: DailyRooms, fake_daily: FakeDaily) -> None:
    caller = fake_daily.dial_in(ROOM)
    answer = await post(fake_daily, "sipRefer", {"sessionId": caller, "toEndPoint": "sip:desk@pbx.example.com"})
    assert answer.status_code == 200
    assert fake_daily.transfers[0]["how"] == "sipRefer"


async def test_a_transfer_past_the_timeout_is_given_up_once_though_daily_takes_it_late(fake_daily: FakeDaily) -> None:
    client = DailyRooms(DailySettings.from_env({**fake_daily.env, "DAILY_TIMEOUT_SECONDS": "0.5"}))
    try:
        await client.create(SID, 600)
        caller = fake_daily.dial_in(ROOM)
        hold = fake_daily.hold(method="POST", path_contains="/sipCallTransfer")
        with pytest.raises(DailyError) as failed:
            await client.sip_call_transfer(SID, caller, "+14155550123")
        assert failed.value.reason == "daily_unavailable"  # may have been done: the caller says unknown
        hold.release()
        assert await fake_daily.eventually(lambda: len(fake_daily.transfers) == 1)
        assert len(fake_daily.calls_to("POST", "/sipCallTransfer")) == 1
    finally:
        await client.aclose()
