"""An unpriced call a SIP edge started with its own credential is marked on its session's timeline
(`sip_inbound`), so that its `session.ended` webhook, its report and its usage wait for the edge's end (who hung
up, its SIP cause) as a priced call's do (dispatcher/observability/sip_end.py); a client's own call token
leaves no such mark. Real calls: the carrier's stream opened with the token, a real bot answering it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from dispatcher.phone.edge_secret import HEADER, EdgeSecret
from tests.fakes.carriers import CarrierCall
from tests.support.phone_dispatcher import API_KEY, Phone, phone_dispatcher

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE_URL = "http://127.0.0.1:9"  # listed; nothing listens there (the dispatcher never calls it here)
ASKER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def dispatcher() -> AsyncIterator[Phone]:
    async for phone in phone_dispatcher(keyed=True, phone_env={"SIP_EDGE_URL": EDGE_URL, "SIP_EDGE_SECRET": SECRET}):
        yield phone


async def _events_of_a_call(dispatcher: Phone, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = await dispatcher.api.post("/start", json={"transport": "exotel", "body": {}}, headers=headers)
    assert answer.status_code == 201, answer.text
    token, session_id = answer.json()["token"], answer.json()["sessionId"]
    call = CarrierCall("exotel", dispatcher.ws(f"/ws/exotel/{token}"))
    await call.open()
    await call.handshake()
    try:
        assert await call.next_bot_audio(timeout=60)  # the bot answered: the session is up
    finally:
        with contextlib.suppress(ConnectionClosed):
            await call.hang_up()
    timeline = await dispatcher.api.get(f"/sessions/{session_id}/timeline", headers=ASKER)
    assert timeline.status_code == 200, timeline.text
    return timeline.json()["events"]


async def test_an_edges_unpriced_call_is_marked_as_its_edges_and_a_clients_own_is_not(dispatcher: Phone) -> None:
    edge = {**ASKER, HEADER: EdgeSecret(SECRET).edge_credential(EDGE_URL)}
    marked = [e["event"] for e in await _events_of_a_call(dispatcher, edge)]
    assert marked.count("sip_inbound") == 1 and "telephony" not in marked, marked
    unmarked = [e["event"] for e in await _events_of_a_call(dispatcher, ASKER)]
    assert "sip_inbound" not in unmarked and "requested" in unmarked, unmarked
