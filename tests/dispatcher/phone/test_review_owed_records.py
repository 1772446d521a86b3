"""A hostile review of the SIP edge records owed while the store blinked (dispatcher/phone/owed_edge_records.py,
sip_edges.py `claim`/`took_inbound`/`forget_inbound`/`reporter`). Each test states what should hold and is a
strict xfail while the code does otherwise: it starts passing (and so fails as XPASS) once the finding is fixed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from dispatcher.phone.edge_record import record_key
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edges import SipEdges
from dispatcher.phone.tokens import MAX_TOKEN_BODY_BYTES
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.phone.test_inbound_edge_record import SECRET, app, client, presenting
from tests.dispatcher.phone.test_inbound_edge_record import A as LISTED
from tests.dispatcher.phone.test_sip_edge_records import ORDER, Scripted, answer, refused, replica
from tests.support.waiting import until

__all__ = ["app"]  # the fixture, imported for this module's tests

A, B = "http://10.0.0.1:8081", "http://10.0.0.2:8081"


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


@pytest.mark.xfail(strict=True, reason="the owed write skips claim's own-token rule: a record of the same hand-over "
                   "at an edge that provably placed nothing wins over the edge that placed the call")
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


@pytest.mark.xfail(strict=True, reason="forget_inbound does not stop the owed task's write in flight: the refused "
                   "start's record lands after its let_go and stays for the record's whole life")
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


@pytest.mark.xfail(strict=True, reason="only an eval-token refusal lets the owed record go: a start refused later "
                   "(413 body_too_large, hold_place's 429/503) keeps it owed, then written, for hours")
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
