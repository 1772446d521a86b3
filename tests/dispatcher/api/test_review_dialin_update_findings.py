"""Hostile review of the Daily dial-in transfer's trust in "the room's one participant without a token's user"
(dispatcher/phone/daily_transfers.py): what puts a SIP leg into a session's room. Each test is a finding the
product code had, and now keeps fixed; the dial-in sessions are made as tests/dispatcher/api/test_daily_dialin.py
makes them, against the strict fake (tests/fakes/daily.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.dispatcher.api.test_daily_dialin import SECRET, Cloud, _cloud
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly


@pytest.fixture
async def cloud(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[Cloud]:
    async for c in _cloud(fake_fly, fake_daily, {}):
        yield c


async def dialin(cloud: Cloud, call_id: str, caller: str) -> str:
    body = {"From": caller, "To": "+14155550199", "callId": call_id, "callDomain": "dom-r"}
    answer = await cloud.http.post(f"/phone/daily/dialin/{SECRET}", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["sessionId"])


async def test_a_bots_pinless_update_may_only_connect_its_caller_to_its_own_room(cloud: Cloud) -> None:
    """Bot A's credential cannot put A's caller in B's room, where B's transfer would take it for B's caller."""
    cloud.daily.hold_call("call-a", "dom-r")
    session_a = await dialin(cloud, "call-a", "+14155550101")
    session_b = await dialin(cloud, "call-b", "+14155550102")
    credential_a = cloud.launches[0].body["daily_api_key"]
    (room_b,) = [name for name in cloud.daily.rooms if name.endswith(session_b)]
    update = {"callId": "call-a", "callDomain": "dom-r", "sipUri": cloud.daily.sip_endpoint(room_b)}
    answer = await cloud.http.post(f"/phone/daily/{session_a}/dialin/pinlessCallUpdate", json=update,
                                   headers={"Authorization": f"Bearer {credential_a}"})
    assert answer.status_code == 403, answer.text
    assert "its own session's room" in answer.json()["error"]["message"]
    assert cloud.daily.connected_calls == {}  # Daily was never asked to put A's caller in B's room
    (room_a,) = [name for name in cloud.daily.rooms if name.endswith(session_a)]
    update["sipUri"] = cloud.daily.sip_endpoint(room_a)
    own = await cloud.http.post(f"/phone/daily/{session_a}/dialin/pinlessCallUpdate", json=update,
                                headers={"Authorization": f"Bearer {credential_a}"})
    assert own.status_code == 200, own.text
    assert cloud.daily.connected_calls == {"call-a": cloud.daily.sip_endpoint(room_a)}
