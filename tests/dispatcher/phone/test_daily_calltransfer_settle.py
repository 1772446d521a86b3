"""A Daily cold transfer whose outcome the dispatcher never heard, settled by Daily's calltransfer webhooks
(dispatcher/phone/daily_calltransfer.py) against the transfer's record in the store: DailyTransfers and
DailyCallTransfers driven directly, with the real Daily client against the strict fake (tests/fakes/daily.py),
whose events are read back from what it sent."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.media.daily import DailyRooms
from dispatcher.phone.daily_calltransfer import DailyCallTransfers
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.memory import LocalFirstClaims
from dispatcher.store.timelines import MemoryTimelines
from tests.dispatcher.phone.test_review_daily_transfer_findings import (
    SESSION,
    TARGETS,
    _Sessions,
    cancelled_while_held,
    room_of,
)
from tests.dispatcher.phone.test_review_daily_transfer_findings import rooms as rooms  # noqa: PLC0414 - the fixture
from tests.fakes.daily import FakeDaily


class _Timeline:
    """`SessionTimeline`'s `note` (its listeners told: a `transferred` pushes `session.transferred`) and
    `amend` (they are not), each kept in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        self.events.append(("note", event, {k: v for k, v in fields.items() if v is not None}))

    def amend(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        self.events.append(("amend", event, {k: v for k, v in fields.items() if v is not None}))


async def test_a_cancelled_transfer_noted_unknown_is_amended_accepted_never_pushed_twice(
    rooms: DailyRooms, fake_daily: FakeDaily,
) -> None:
    fake_daily.join(room_of(rooms), f"bot-{SESSION}")
    fake_daily.dial_in(room_of(rooms))
    claims, timeline = LocalFirstClaims(), _Timeline()
    transfers = DailyTransfers(rooms, _Sessions(), claims, TARGETS, timeline)
    hold = fake_daily.hold(method="POST", path_contains="/sipCallTransfer")
    await cancelled_while_held(fake_daily, transfers, hold)  # then Daily acts on the POST it held
    assert [(how, kind, fields["outcome"]) for how, kind, fields in timeline.events] == [
        ("note", "transferred", "unknown")]  # its `session.transferred` said unknown
    assert await fake_daily.eventually(lambda: len(fake_daily.events) == 2)  # triggered, initiated
    hooks = DailyCallTransfers(rooms, claims, timeline)
    for event in [*fake_daily.events, *fake_daily.events]:  # each delivered twice
        read = hooks.read(event)
        assert read is not None and read.session_id == SESSION
        assert await hooks.heard(read)
    assert timeline.events[1:] == [("amend", "transferred", {
        "to": "+14155550123", "mode": "cold", "carrier": "daily", "carrier_status": "accepted",
        "heard_from": "calltransfer"})]
    assert (await claims.held(record_key(SESSION)) or "").endswith(" outcome=reconciled")


async def test_an_event_of_a_room_with_no_transfer_of_this_store_is_ignored(rooms: DailyRooms) -> None:
    timeline = _Timeline()
    hooks = DailyCallTransfers(rooms, LocalFirstClaims(), timeline)
    event = hooks.read({"type": "calltransfer.answered", "id": "e-1", "event_ts": 1770005095.25, "payload": {
        "room": room_of(rooms), "timestamp": 1770005095, "to_endpoint": "+14155550123"}})
    assert event is not None and event.at == 1770005095.0
    assert not await hooks.heard(event)
    assert timeline.events == []


async def test_an_amended_event_is_kept_without_telling_the_listeners() -> None:
    timeline = SessionTimeline(MemoryTimelines(), "r-1")
    told: list[str] = []
    timeline.listeners.append(lambda session_id, record: told.append(record["event"]))
    timeline.note(SESSION, "requested")  # a timeline opens with its request
    timeline.note(SESSION, "transferred", carrier_status="unknown")
    timeline.amend(SESSION, "transferred", carrier_status="accepted")
    await timeline.settled()
    await asyncio.sleep(0)
    assert told == ["requested", "transferred"]
    events = await timeline.read(SESSION)
    assert [(e["event"], e.get("carrier_status")) for e in events] == [
        ("requested", None), ("transferred", "unknown"), ("transferred", "accepted")]
