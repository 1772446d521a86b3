"""A call started or placed while the store did not answer is owed its SIP edge record: written once the store
answers again, by the app's lifespan's task or before a report at this replica, never over another edge's record,
at most MOST at once (dispatcher/phone/owed_edge_records.py, docs/sip.md#edge-credentials)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone import owed_edge_records
from dispatcher.phone.edge_record import record_key
from dispatcher.phone.owed_edge_records import OwedEdgeRecords
from dispatcher.settings import Settings
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.dispatcher.phone.test_inbound_edge_record import NOT_PLACED, SECRET, A, B, app, bearer, client
from tests.dispatcher.phone.test_sip_edge_records import ORDER, Scripted, answer
from tests.support.dispatcher_server import in_process
from tests.support.waiting import until

__all__ = ["app"]  # the fixture, imported for this module's tests

OUTBOUND_USD = 0.0097
TASK = "sip-edge-records-owed"


def blink(monkeypatch: pytest.MonkeyPatch, records: Any) -> None:
    """The store stops answering (every write and read times out) until `monkeypatch.undo()`."""

    async def not_answering(*args: object) -> str:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(records, "first", not_answering)
    monkeypatch.setattr(records, "held", not_answering)


def settled(app: FastAPI, outcome: str) -> float:
    value = app.state.voicefleet.metrics.registry.get_sample_value(
        "voicefleet_sip_edge_records_owed_settled_total", {"outcome": outcome})
    return value or 0.0


async def test_a_bridged_leg_of_a_call_started_in_a_store_blink_is_priced_once_the_store_answers(
        standin_mode: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The lifespan's task writes the owed record (no report triggers it): the edge's reports are then taken as a
    recorded call's, and price the bridged leg, as at any replica reading the store."""
    standin_mode("pipeline-error")  # the bot starts, then ends on its own: the session is over, as at a bridge
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"SIP_EDGE_URL": A, "SIP_EDGE_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
    app = create_app(Settings(), env=env, machines=machines, rooms=None)
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    async with app.router.lifespan_context(app), in_process(app) as running:
        api = running.client
        start = await api.post("/start", json={})
        assert start.status_code == 201, start.text
        session_id = start.json()["session_id"]
        blink(monkeypatch, records)
        await state.trunk_calls.took_inbound(session_id, A)  # as its start through the edge, in the blink
        monkeypatch.undo()
        assert await until(lambda: records.held(record_key(session_id)), "the owed record written",
                           timeout=30) == f"{A} inbound"
        assert state.trunk_calls.edges.owed.owed(session_id) is None  # written: the store's record answers now

        async def ended() -> bool:
            answer: dict[str, Any] = (await api.get(f"/sessions/{session_id}")).json()
            return answer.get("status") in ("ended", "failed") and "cost" in answer

        await until(ended, "the session's end", timeout=30)
        answered = {"event": "answered", "trunk": "twilio", "direction": "outbound", "usd_per_minute": OUTBOUND_USD,
                    "increment_seconds": 60, "time_limit_seconds": 7200}
        for leg in (answered, {"event": "ended", "trunk": "twilio"}):
            told = await api.post(f"/edge/calls/{session_id}/bridged", json=leg, headers=bearer(A))
            assert told.status_code == 204, told.text
        cost = (await api.get(f"/sessions/{session_id}")).json()["cost"]
    assert cost["telephony"]["bridged"]["usd"] == OUTBOUND_USD, cost
    assert settled(app, "written") == 1


async def test_a_call_placed_unrecorded_in_a_blink_takes_its_edge_s_report_once_the_store_answers(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    state.trunk_calls.edges._clients = {A: Scripted([answer(202)]), B: Scripted([answer(202)])}
    blink(monkeypatch, records)
    assert await state.trunk_calls.hand_over(ORDER, keyed=False) == A  # no Idempotency-Key: placed unrecorded
    monkeypatch.undo()
    async with client(app) as api:
        told = await api.post("/edge/calls/session-r/outcome", json=NOT_PLACED, headers=bearer(A))
    assert told.status_code == 204, told.text  # before: 404, a call no record ties to an edge
    assert (await records.held(record_key("session-r"))).split(" ")[0] == A


async def test_an_owed_record_never_overwrites_another_edge_s(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    blink(monkeypatch, records)
    await state.trunk_calls.took_inbound("vf_shared", A)  # owed here, at A
    monkeypatch.undo()
    await records.first(record_key("vf_shared"), f"{B} inbound", 600)  # another replica's record, at B, first
    async with client(app) as api:
        by_a = await api.post("/edge/calls/vf_shared/outcome", json=NOT_PLACED, headers=bearer(A))
        by_b = await api.post("/edge/calls/vf_shared/outcome", json=NOT_PLACED, headers=bearer(B))
    assert (by_a.status_code, by_a.json()["error"]["code"]) == (403, "sip_edge_not_holding"), by_a.text
    assert by_b.status_code == 204, by_b.text
    assert await records.held(record_key("vf_shared")) == f"{B} inbound"
    assert settled(app, "other_edge") == 1


async def test_a_full_memory_owes_nothing(app: FastAPI) -> None:
    """Without a store, a memory full of records would be as full later: the call's reports stay refused."""
    state = app.state.voicefleet
    await state.trunk_calls.took_inbound("vf_earlier", A)
    state.trunk_calls.edges._records._most = 1
    await state.trunk_calls.took_inbound("vf_full", A)
    assert state.trunk_calls.edges.owed.owed("vf_full") is None
    async with client(app) as api:
        told = await api.post("/edge/calls/vf_full/outcome", json=NOT_PLACED, headers=bearer(A))
    assert told.status_code == 404, told.text


async def test_past_its_bound_the_oldest_owed_record_is_dropped_and_counted() -> None:
    registry = CollectorRegistry()
    owed = OwedEdgeRecords(LocalFirstClaims(), registry=registry, most=2)
    for session_id in ("s1", "s2", "s3"):
        owed.owe(session_id, A, f"{A} inbound", 600)
    assert [owed.owed(s) for s in ("s1", "s2", "s3")] == [None, A, A]
    assert registry.get_sample_value("voicefleet_sip_edge_records_owed") == 2
    assert registry.get_sample_value("voicefleet_sip_edge_records_owed_settled_total", {"outcome": "dropped"}) == 1


async def test_an_owed_record_is_not_written_past_its_life() -> None:
    now = [0.0]
    records = LocalFirstClaims()
    owed = OwedEdgeRecords(records, clock=lambda: now[0])
    owed.owe("s1", A, f"{A} inbound", 10)
    now[0] = 11.0
    writing = asyncio.create_task(owed.run())
    try:
        await until(lambda: owed.owed("s1") is None and not owed._owed, "the expired record dropped", timeout=30)
    finally:
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
    assert await records.held(record_key("s1")) is None


async def test_a_fault_of_the_writers_own_is_logged_and_the_task_writes_the_record_after_a_pause(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Not the store's silence but a bug (an error no StoreUnavailable wraps): the record stays owed, the task
    lives on, and after MOST_DELAY (shortened here) it writes the record."""
    monkeypatch.setattr(owed_edge_records, "MOST_DELAY", 0.2)
    records = LocalFirstClaims()
    tries: list[str] = []

    async def faulty_once(key: str, value: str, seconds: float) -> str:
        tries.append(key)
        if len(tries) == 1:
            raise RuntimeError("a fault of the writer's own")
        return await LocalFirstClaims.first(records, key, value, seconds)

    monkeypatch.setattr(records, "first", faulty_once)
    registry = CollectorRegistry()
    owed = OwedEdgeRecords(records, registry=registry)
    owed.owe("s1", A, f"{A} inbound", 600)
    writing = asyncio.create_task(owed.run())
    try:
        await until(lambda: owed.owed("s1") is None, "the owed record written after the fault", timeout=30)
        assert not writing.done()  # the task lives on for the next record owed
    finally:
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
    assert await records.held(record_key("s1")) == f"{A} inbound" and len(tries) == 2
    [fault] = [r for r in caplog.records if "writing them failed" in r.getMessage()]
    assert fault.exc_info is not None and isinstance(fault.exc_info[1], RuntimeError)
    assert registry.get_sample_value("voicefleet_sip_edge_records_owed_settled_total", {"outcome": "written"}) == 1


async def test_shutdown_with_records_owed_stops_the_task_cleanly(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    blink(monkeypatch, state.trunk_calls.edges._records)  # the store never answers again
    caplog.set_level(logging.ERROR, logger="asyncio")
    caplog.set_level(logging.WARNING, logger="dispatcher.phone")
    async with app.router.lifespan_context(app):
        await state.trunk_calls.took_inbound("vf_owed", A)
        task = next(t for t in asyncio.all_tasks() if t.get_name() == TASK)
        assert state.trunk_calls.edges.owed.owed("vf_owed") == A
    assert task.done() and task.cancelled()
    del task
    gc.collect()
    assert not [r for r in caplog.records if "destroyed" in r.getMessage()]
    # The stop's last try met the store still down: what it loses is said, not lost silently.
    assert any("1 SIP edge records owed are lost" in r.getMessage() for r in caplog.records), caplog.text


async def test_while_the_store_still_blinks_this_replica_takes_the_owed_edge_s_report_alone(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    blink(monkeypatch, records)
    await state.trunk_calls.took_inbound("vf_owed", A)
    async with client(app) as api:
        by_b = await api.post("/edge/calls/vf_owed/outcome", json=NOT_PLACED, headers=bearer(B))
        by_a = await api.post("/edge/calls/vf_owed/outcome", json=NOT_PLACED, headers=bearer(A))
    assert (by_b.status_code, by_b.json()["error"]["code"]) == (403, "sip_edge_not_holding"), by_b.text
    assert by_a.status_code == 204, by_a.text  # before: 503, the store cannot say which edge holds it
    assert state.trunk_calls.edges.owed.owed("vf_owed") == A  # still owed: written once the store answers
