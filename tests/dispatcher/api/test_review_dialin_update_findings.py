"""Hostile review of the Daily dial-in transfer's trust in "the room's one participant without a token's user"
(dispatcher/phone/daily_transfers.py): what puts a SIP leg into a session's room. A strict-xfail test is a
finding while the product code has it; the dial-in sessions are made as tests/dispatcher/api/test_daily_dialin.py
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


@pytest.mark.xfail(strict=True, reason=(
    "MEDIUM: a dial-in bot's credential (daily_dialin.py check_credential) binds its session, callId and "
    "callDomain but not `sipUri`, and routers/daily_dialin.py forwards any sipUri with the deployment's key. "
    "Bot A (tenant code) can patch its own caller into another session's room whose SIP endpoint it knows "
    "or guesses (the fake derives it from the room name; Daily's real format is unverified), "
    "where the Daily transfer then takes that tokenless leg for B's caller: B's transfer moves A's caller, "
    "or B's own caller is shut out (num_endpoints 1). Fix: answer 403 unless sipUri is the SIP endpoint of "
    "the credential's own session's room (read from the room's config, or recorded at create)."))
async def test_a_bots_pinless_update_may_only_connect_its_caller_to_its_own_room(cloud: Cloud) -> None:
    cloud.daily.hold_call("call-a", "dom-r")
    session_a = await dialin(cloud, "call-a", "+14155550101")
    session_b = await dialin(cloud, "call-b", "+14155550102")
    credential_a = cloud.launches[0].body["daily_api_key"]
    (room_b,) = [name for name in cloud.daily.rooms if name.endswith(session_b)]
    update = {"callId": "call-a", "callDomain": "dom-r", "sipUri": cloud.daily.sip_endpoint(room_b)}
    answer = await cloud.http.post(f"/phone/daily/{session_a}/dialin/pinlessCallUpdate", json=update,
                                   headers={"Authorization": f"Bearer {credential_a}"})
    assert answer.status_code == 403, answer.text
    assert cloud.daily.connected_calls == {}  # Daily was never asked to put A's caller in B's room
