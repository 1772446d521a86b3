"""The record of a Daily dial-in call's transfer (dispatcher/phone/daily_transfer_record.py): read and written in
the format the shipped release stores, so a record it wrote before an upgrade is settled by this one."""

from __future__ import annotations

import pytest

from dispatcher.media.daily import DailyRooms
from dispatcher.phone.daily_calltransfer import DailyCallTransfers
from dispatcher.phone.daily_transfer_record import Outcome, TransferRecord, record_key
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.test_daily_calltransfer_settle import _Timeline
from tests.dispatcher.phone.test_review_daily_transfer_findings import SESSION, room_of
from tests.dispatcher.phone.test_review_daily_transfer_findings import rooms as rooms  # noqa: PLC0414 - the fixture

# Values as the shipped release wrote them: a bare claim, a warm transfer's leg, a cold one's unknown outcome.
SHIPPED = {
    "5f0c1e2d3a4b6978": TransferRecord("5f0c1e2d3a4b6978"),
    "5f0c1e2d3a4b6978 leg=0d1e6c1f-5a2b-4c8e-9f7a-3b2d1c0e9f8a": TransferRecord(
        "5f0c1e2d3a4b6978", leg="0d1e6c1f-5a2b-4c8e-9f7a-3b2d1c0e9f8a"),
    "5f0c1e2d3a4b6978 outcome=unknown": TransferRecord("5f0c1e2d3a4b6978", outcome=Outcome.UNKNOWN_ANSWERED),
    "5f0c1e2d3a4b6978 outcome=unknown-noted": TransferRecord("5f0c1e2d3a4b6978", outcome=Outcome.UNKNOWN_NOTED),
    "5f0c1e2d3a4b6978 outcome=heard": TransferRecord("5f0c1e2d3a4b6978", outcome=Outcome.HEARD),
    "5f0c1e2d3a4b6978 outcome=reconciled": TransferRecord("5f0c1e2d3a4b6978", outcome=Outcome.RECONCILED),
}


@pytest.mark.parametrize("value", sorted(SHIPPED))
def test_each_shipped_value_reads_as_its_record_and_is_written_back_the_same(value: str) -> None:
    record = TransferRecord.parse(value)
    assert record == SHIPPED[value]
    assert str(record) == value


@pytest.mark.parametrize("value", ["", "a b", "5f0c1e2d3a4b6978 outcome=later", "5f0c1e2d3a4b6978 leg=",
                                   "5f0c1e2d3a4b6978 outcome="])
def test_a_value_in_no_known_form_reads_as_none(value: str) -> None:
    assert TransferRecord.parse(value) is None


async def test_an_unknown_outcome_the_shipped_release_stored_is_settled_by_dailys_webhook(rooms: DailyRooms) -> None:
    claims, timeline = LocalFirstClaims(), _Timeline()
    await claims.first(record_key(SESSION), "5f0c1e2d3a4b6978 outcome=unknown-noted", 3600)
    hooks = DailyCallTransfers(rooms, claims, timeline)
    event = hooks.read({"type": "calltransfer.triggered", "id": "e-1", "event_ts": 1770005095.25, "payload": {
        "room": room_of(rooms), "timestamp": "1770005095", "to_endpoint": "+14155550123"}})
    assert event is not None and await hooks.heard(event)
    assert await claims.held(record_key(SESSION)) == "5f0c1e2d3a4b6978 outcome=reconciled"
    assert [(how, kind, fields["carrier_status"]) for how, kind, fields in timeline.events] == [
        ("amend", "transferred", "accepted")]
