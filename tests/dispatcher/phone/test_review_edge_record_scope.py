"""A hostile review of the SIP edge records' scope (dispatcher/phone/sip_edges.py `took_inbound`, `claim`;
dispatcher/api/routers/sessions.py, the inbound start recorded before its eval token is spent): each test is a
case the records got wrong: a full memory's retry advice, a refused start's record, a store blink at a start."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from dispatcher.errors import ApiError
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_inbound_edge_record import UNPRICED, A, app, bearer, client, presenting
from tests.dispatcher.phone.test_sip_edge_records import ORDER, Scripted, answer, replica

__all__ = ["app"]  # the fixture, shared with the inbound record's own tests

ANSWERED_LEG: dict[str, Any] = {"event": "answered", "trunk": "twilio", "direction": "outbound",
                                "usd_per_minute": 0.014, "time_limit_seconds": 3600}


async def test_a_full_memory_of_records_gives_no_retry_advice_a_retry_cannot_meet() -> None:
    edges = {"http://10.0.0.1:8081": Scripted([answer(202)]), "http://10.0.0.2:8081": Scripted([answer(202)])}
    with pytest.raises(ApiError) as refused:
        await replica(tuple(edges), LocalFirstClaims(most=0), edges).hand_over(ORDER)
    assert refused.value.code == "sip_edge_unrecorded"
    # home.py's own answer to a full memory asks for 60 s at least; a record here lasts more than an hour.
    assert refused.value.retry_after is None or refused.value.retry_after >= 60, refused.value.retry_after


async def test_inbound_starts_refused_for_a_forged_eval_token_leave_no_records_to_crowd_out_real_calls(
        app: FastAPI) -> None:
    state = app.state.voicefleet
    state.trunk_calls.edges._records._most = 2  # a replica's memory, scaled down to two records
    async with client(app) as api:
        forged = [await api.post("/start", json={**UNPRICED, "eval_token": "forged.token"}, headers=presenting(A))
                  for _ in range(2)]
        real = await api.post("/start", json=UNPRICED, headers=presenting(A))
    assert [answer.status_code for answer in forged] == [403, 403], [answer.text for answer in forged]
    assert real.status_code == 201, real.text
    assert await state.trunk_calls.edges.recorded(real.json()["sessionId"]) == A, \
        "a real call went unrecorded: the refused starts' records filled the memory"


async def test_a_store_blink_at_an_inbound_start_leaves_its_edge_able_to_report(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    for method in ("first", "held"):  # every write and read-back of the start's record fails
        monkeypatch.setattr(app.state.voicefleet.trunk_calls.edges._records, method, _blink)
    async with client(app) as api:
        start = await api.post("/start", json=UNPRICED, headers=presenting(A))
        monkeypatch.undo()  # the blink is over
        assert start.status_code == 201, start.text  # a blink refuses no start: its record is owed
        session_id = start.json()["sessionId"]
        timeline = app.state.voicefleet.sessions.timeline
        timeline.note(session_id, "requested", release="stable")  # the call ran (its bot's stream is not the point)
        await timeline.settled()
        leg = await api.post(f"/edge/calls/{session_id}/bridged", json=ANSWERED_LEG, headers=bearer(A))
    assert leg.status_code == 204, f"the edge holding the call could not report its bridged leg: {leg.text}"


async def _blink(*args: object) -> str:
    raise StoreUnavailable("the store did not answer: TimeoutError")
