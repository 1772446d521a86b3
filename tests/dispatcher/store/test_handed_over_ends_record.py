"""A kept machine end's record in the store (store/handed_over_ends.py), on a real redis-server as the stack's
user: written with its entry in one script call, read back sealed, removed with it; one a store writer wrote or
changed reads as none, and an entry of the previous format (no record) is still due as before."""

from __future__ import annotations

from pathlib import Path

from dispatcher.app import create_app
from dispatcher.settings import Settings
from dispatcher.store.handed_over_ends import StoreHandedOverEnds
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.support.redis_server import RedisServer, redis_server

SESSION = "s-record-1"
KEPT = "{voicefleet}:machine-ends:handed-over"
RECORD = f"{{voicefleet}}:machine-ends:record:{SESSION}"
EVENTS = [{"event": "requested", "at": 1.0, "release": "stable"}, {"event": "machine_ended", "at": 9.0}]


def ends_of(store: RedisServer) -> StoreHandedOverEnds:
    app = create_app(Settings(reaper_interval_seconds=0), env=store.env, machines=ListedMachines([]), rooms=None)
    grace = app.state.voicefleet.machine_end_grace
    assert grace is not None and isinstance(grace.handed_over, StoreHandedOverEnds)
    return grace.handed_over


async def test_the_record_is_kept_with_its_entry_and_removed_with_it(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        ends = ends_of(store)
        await ends.keep(SESSION, 100.0, EVENTS)
        await ends.hand_over(SESSION, 50.0, EVENTS[:1])  # a record already there is kept
        assert await ends.record(SESSION) == EVENTS
        assert 0 < store.admin().pttl(RECORD) <= store.admin().pttl(KEPT) + 1_000  # expires with its entry
        assert await ends.due(60.0, 30.0, 10) == [SESSION]
        await ends.done(SESSION)
        assert store.admin().zcard(KEPT) == 0 and not store.admin().exists(RECORD)


async def test_a_record_a_store_writer_wrote_or_changed_reads_as_none(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        ends = ends_of(store)
        await ends.keep(SESSION, 100.0, EVENTS)
        sealed = store.admin().get(RECORD)
        store.admin().set(RECORD, sealed.replace("stable", "forged"))
        assert await ends.record(SESSION) is None
        store.admin().set(RECORD, '[{"event": "machine_ended", "at": 9.0}]')
        assert await ends.record(SESSION) is None


async def test_an_entry_of_the_previous_format_is_due_without_a_record(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store:
        ends = ends_of(store)
        store.admin().zadd(KEPT, {SESSION: 10.0})  # written by a replica before records were kept
        assert await ends.due(20.0, 30.0, 10) == [SESSION]
        assert await ends.record(SESSION) is None
        await ends.done(SESSION)
        assert store.admin().zcard(KEPT) == 0
