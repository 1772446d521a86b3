"""A hostile review of the SIP edge records owed while the store blinked (dispatcher/phone/owed_edge_records.py,
sip_edges.py `claim`/`took_inbound`/`forget_inbound`/`reporter`): each test states what must hold, a case the
first version got wrong."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone import owed_edge_records
from dispatcher.phone.edge_record import record_key
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edges import SipEdges
from dispatcher.phone.tokens import MAX_TOKEN_BODY_BYTES
from dispatcher.settings import Settings
from dispatcher.store.first_read_back import TRIES
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_inbound_edge_record import SECRET, app, client, presenting
from tests.dispatcher.phone.test_inbound_edge_record import A as LISTED
from tests.dispatcher.phone.test_sip_edge_records import ORDER, Scripted, answer, refused, replica
from tests.support.waiting import until

__all__ = ["app"]  # the fixture, imported for this module's tests

A, B = "http://10.0.0.1:8081", "http://10.0.0.2:8081"
ROOT = Path(__file__).resolve().parents[3]


class Blinking(LocalFirstClaims):
    """A store in a blink whose writes land but whose replies are lost (a timeout after the `SET`), as
    `StoreFirstClaims` raises then; its reads and let-gos get no answer. `down = False`: it answers again."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def first(self, what: str, value: str, seconds: float) -> str:
        recorded = await super().first(what, value, seconds)
        if self.down:
            raise StoreUnavailable("the store did not answer: TimeoutError (the reply lost after the write)")
        return recorded

    async def held(self, what: str) -> str | None:
        if self.down:
            raise StoreUnavailable("the store did not answer: TimeoutError")
        return await super().held(what)

    async def let_go(self, what: str, value: str) -> None:
        if self.down:
            raise StoreUnavailable("the store did not answer: TimeoutError")
        await super().let_go(what, value)


async def test_an_owed_hand_over_record_is_the_edge_that_placed_the_call_not_one_that_refused_it() -> None:
    """No Idempotency-Key, edges A and B, a store blink. A's record lands (its reply lost), A refuses the
    connection (nothing placed), its `let_go` is lost to the blink; B places the call, its record owed. Once
    the store answers, `claim` would have moved the hand-over's own record (its token) to B; the owed write
    (`first`, first write wins) finds A's and keeps it: B's reports on its own call are refused 403, A's taken."""
    records = Blinking()
    calls = replica((A, B), records, {A: Scripted([refused()]), B: Scripted([answer(202)])})
    records.down = True
    assert await calls.hand_over(ORDER, keyed=False) == B  # placed at B, unrecorded
    records.down = False
    assert await calls.edges.reporter("session-r") == B  # the edge holding the call reports on it
    assert (await records.held(record_key("session-r")) or "").startswith(B)


class Slow(LocalFirstClaims):
    """A store whose `first` is applied only once `go` is set (a write in flight); `over` once it is applied
    or abandoned."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.asked = asyncio.Event()
        self.go = asyncio.Event()
        self.over = asyncio.Event()

    async def first(self, what: str, value: str, seconds: float) -> str:
        if self.down:
            raise StoreUnavailable("the store did not answer: TimeoutError")
        self.asked.set()
        try:
            await self.go.wait()
            return await super().first(what, value, seconds)
        finally:
            self.over.set()


async def test_a_refused_start_s_record_is_not_written_by_the_owed_task_after_it_was_let_go() -> None:
    records = Slow()
    edges = SipEdges((A, B), EdgeSecret(SECRET), timeout=1.0, max_answer_bytes=4096, records=records)
    await edges.took_inbound("vf_refused", A, 3600)  # in the blink: owed
    records.down = False
    writing = asyncio.create_task(edges.owed.run())
    try:
        await until(records.asked.wait, "the owed write sent")
        await edges.forget_inbound("vf_refused", A)  # the start refused for its eval token meanwhile
        records.go.set()  # the write in flight lands
        await until(records.over.wait, "the write in flight applied or abandoned")
        await until(lambda: not edges.owed._owed, "nothing owed")
    finally:
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
    assert await records.held(record_key("vf_refused")) is None  # a refused start keeps no record


async def test_an_inbound_start_refused_after_its_record_was_owed_owes_nothing(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edge's start in a blink whose body is past MAX_TOKEN_BODY_BYTES is refused 413 after `took_inbound`:
    its record stays owed (crowding the 10,000 owed, then written to the store for a session that never was)."""
    records = app.state.voicefleet.trunk_calls.edges._records

    async def not_answering(*args: Any) -> str:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(records, "first", not_answering)
    monkeypatch.setattr(records, "held", not_answering)
    start = {"transport": "exotel", "body": {"call_id": "1@trunk", "pad": "x" * (MAX_TOKEN_BODY_BYTES + 1)}}
    async with client(app) as api:
        refused_start = await api.post("/start", json=start, headers=presenting(LISTED))
    assert (refused_start.status_code, refused_start.json()["error"]["code"]) == (413, "body_too_large"), \
        refused_start.text
    assert not app.state.voicefleet.trunk_calls.edges.owed._owed  # nothing started: nothing owed


async def test_a_replica_stopping_once_the_store_answers_again_writes_what_it_owes_or_says_it_lost_it(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A deploy a few seconds after a blink: the store answers, the task sleeps in its backoff (up to 10 s).
    Stopping then neither writes the records owed (one bounded try would) nor logs how many were lost: the
    gauge that said so goes with the process, and those calls' reports are refused at every replica."""
    # The task deep in its backoff, as after an outage of a minute: each wait 5 to 10 s (MOST_DELAY's half to whole).
    monkeypatch.setattr(owed_edge_records, "FIRST_DELAY", owed_edge_records.MOST_DELAY)
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    records = state.trunk_calls.edges._records
    tried = [0]

    async def not_answering(*args: Any) -> str:
        tried[0] += 1
        raise StoreUnavailable("the store did not answer: TimeoutError")

    caplog.set_level(logging.WARNING)
    async with app.router.lifespan_context(app):
        monkeypatch.setattr(records, "first", not_answering)
        monkeypatch.setattr(records, "held", not_answering)
        await state.trunk_calls.took_inbound("vf_owed", A)
        asked = tried[0]
        # first_read_back's 3 writes and 3 read-backs failed: the task is in its backoff.
        await until(lambda: tried[0] >= asked + 2 * TRIES, "the owed task's write failed")
        monkeypatch.setattr(records, "first", LocalFirstClaims.first.__get__(records))  # the store answers again…
        monkeypatch.setattr(records, "held", LocalFirstClaims.held.__get__(records))  # …and the replica is told to stop
    written = await records.held(record_key("vf_owed"))
    lost_said = any("owed" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
    assert written == f"{A} inbound" or lost_said


async def test_the_replicas_doc_says_what_another_replica_answers_an_owed_call_s_report_in_a_blink() -> None:
    records = Blinking()
    owing = replica((A, B), records, {A: Scripted([answer(202)]), B: Scripted([answer(202)])})
    other = replica((A, B), records, {A: Scripted([answer(202)]), B: Scripted([answer(202)])})
    records.down = True
    await owing.took_inbound("vf_owed", A)
    assert await owing.edges.reporter("vf_owed") == A
    with pytest.raises(ApiError) as refused_report:
        await other.edges.reporter("vf_owed")
    assert (refused_report.value.status, refused_report.value.code) == (503, "sip_edge_unrecorded")
    row = next(line for line in (ROOT / "docs" / "replicas.md").read_text().splitlines()
               if line.startswith("| an inbound call through a SIP edge"))
    assert "others refuse them `404`" not in row
