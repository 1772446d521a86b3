"""`POST /sessions/{id}/sip_end`: the SIP edge tells how a call's SIP side ended, with the session's own
key; the session's timeline keeps it (`sip_ended`), and anything else is refused with a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.phone_dispatcher import API_KEY, Phone, phone_dispatcher

OTHER_KEY = "phone-test-other-key-0123456789"
KEY = {"Authorization": f"Bearer {API_KEY}"}
BYE = {"by": "caller", "how": "bye", "reason": 'Q.850;cause=16;text="Normal call clearing"'}


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    async for running in phone_dispatcher(keyed=True, more_keys=(OTHER_KEY,)):
        yield running


async def started(phone: Phone) -> str:
    answer = await phone.api.post("/start", json={}, headers=KEY)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["session_id"])


async def test_the_edges_word_on_a_calls_end_is_on_its_sessions_timeline(phone: Phone) -> None:
    session_id = await started(phone)
    told = await phone.api.post(f"/sessions/{session_id}/sip_end", json=BYE, headers=KEY)
    assert told.status_code == 204, told.text
    await phone.app.state.voicefleet.sessions.timeline.settled()
    events = (await phone.api.get(f"/sessions/{session_id}/timeline", headers=KEY)).json()["events"]
    [event] = [e for e in events if e["event"] == "sip_ended"]
    assert {k: event[k] for k in BYE} == BYE and "status" not in event


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"by": "trunk", "how": "bye"}, 422, "invalid_request"),
    ({"by": "edge", "how": "refused", "status": 99}, 422, "invalid_request"),
    ({"by": "caller", "how": "bye", "reason": "x" * 257}, 422, "invalid_request"),
    ({"by": "caller", "how": "bye", "then": "more"}, 422, "invalid_request"),
])
async def test_a_malformed_end_is_refused_naming_the_field(phone: Phone, body: dict[str, object], status: int,
                                                            code: str) -> None:
    session_id = await started(phone)
    told = await phone.api.post(f"/sessions/{session_id}/sip_end", json=body, headers=KEY)
    assert (told.status_code, told.json()["error"]["code"]) == (status, code), told.text


async def test_another_keys_session_and_an_id_not_the_keys_are_not_found_and_no_key_is_401(phone: Phone) -> None:
    session_id = await started(phone)
    other = await phone.api.post(f"/sessions/{session_id}/sip_end", json=BYE,
                                 headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404, other.text
    forged = await phone.api.post(f"/sessions/{session_id[:-4]}abcd/sip_end", json=BYE, headers=KEY)
    assert forged.status_code == 404, forged.text
    keyless = await phone.api.post(f"/sessions/{session_id}/sip_end", json=BYE)
    assert keyless.status_code == 401, keyless.text
