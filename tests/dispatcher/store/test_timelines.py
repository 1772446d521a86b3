"""Session timelines: one process's (`MemoryTimelines`), bounded in sessions, the oldest forgotten; and the
store's (`StoreTimelines`, on a real redis-server as the stack's store user), whose append costs the store the
same past the bound as before it, that reads a timeline the previous release wrote, and refuses what it would
not read back. What every implementation answers alike: test_coordination_contract.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.timelines import (
    HEAD_EVENTS,
    KEEP_SECONDS,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    MemoryTimelines,
    StoreTimelines,
)
from tests.support.previous_timeline import PREVIOUS_APPEND
from tests.support.redis_server import RedisServer


async def test_past_the_session_bound_the_oldest_timeline_is_forgotten_and_the_rest_kept() -> None:
    timelines = MemoryTimelines(max_sessions=2)
    for session_id in ("s-1", "s-2", "s-3"):
        await timelines.append(session_id, {"event": "requested", "session": session_id})
    assert await timelines.read("s-1") == []  # the oldest
    assert await timelines.read("s-2") == [{"event": "requested", "session": "s-2"}]  # exactly the bound kept
    assert await timelines.read("s-3") == [{"event": "requested", "session": "s-3"}]


async def test_a_session_written_to_again_is_the_newest_and_outlives_older_ones() -> None:
    timelines = MemoryTimelines(max_sessions=2)
    await timelines.append("s-1", {"event": "requested"})
    await timelines.append("s-2", {"event": "requested"})
    await timelines.append("s-1", {"event": "ready"})  # s-1 is now the newest
    await timelines.append("s-3", {"event": "requested"})
    assert await timelines.read("s-2") == []
    assert await timelines.read("s-1") == [{"event": "requested"}, {"event": "ready"}]


async def test_a_timeline_keeps_its_head_then_its_newest_events_up_to_its_bound() -> None:
    timelines = MemoryTimelines(max_events=4, head_events=2)
    await timelines.append("s-1", {"event": "requested"})
    for n in range(5):
        await timelines.append("s-1", {"n": n})
    assert await timelines.read("s-1") == [{"event": "requested"}, {"n": 0}, {"n": 3}, {"n": 4}]


async def test_in_memory_a_dropped_report_leaves_the_timeline_as_it_was() -> None:
    """Past its kind's bound an event is dropped whole: the session is not made the newest, nor kept longer."""
    timelines = MemoryTimelines(max_sessions=2)
    await timelines.append("s-1", {"event": "requested"})
    await timelines.append("s-1", {"event": "ready"})
    await timelines.append("s-2", {"event": "requested"})
    await timelines.append("s-1", {"event": "ready"})  # its second: dropped, s-1 still the oldest
    await timelines.append("s-3", {"event": "requested"})
    assert await timelines.read("s-1") == []
    assert await timelines.read("s-2") == [{"event": "requested"}]


def test_a_head_is_at_least_the_opening_and_leaves_room_for_the_newest() -> None:
    for head in (0, 4):
        with pytest.raises(ValueError):
            MemoryTimelines(max_events=4, head_events=head)


async def test_a_timeline_is_forgotten_once_its_time_is_up() -> None:
    timelines = MemoryTimelines(keep_seconds=0.0)
    await timelines.append("s-1", {"event": "requested"})
    assert await timelines.read("s-1") == []


# --- in the store --------------------------------------------------------------------------------

@pytest.fixture
def seal(redis: RedisServer) -> MessageSeal:
    return MessageSeal(redis.message_secret)


@pytest.fixture
def timelines(store: Store, seal: MessageSeal) -> StoreTimelines:
    return StoreTimelines(store, seal)


def lists(store: Store, session_id: str) -> tuple[str, str]:
    """The session's opening, then its newest."""
    return store.key("timeline", session_id), store.key("timeline-tail", session_id)


async def calls(admin: Redis) -> dict[str, int]:
    """How many times the server ran each command (a script's own commands included)."""
    stats = await admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


def refused(seal: MessageSeal, reason: str) -> float:
    return sum(sample.value for metric in seal.refused.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels == {"channel": "timeline", "reason": reason})


async def previously(store: Store, seal: MessageSeal, session_id: str, event: dict[str, Any]) -> None:
    """An append by a replica of the previous release (its events live a minute)."""
    opening, _ = lists(store, session_id)
    sealed = seal.seal_record(opening, json.dumps(event, separators=(",", ":")).encode()).decode()
    args: list[str | int] = [sealed, MAX_EVENTS, 60_000, "1" if event["event"] == "requested" else "0"]
    await store.call(lambda: store.redis.register_script(PREVIOUS_APPEND)(keys=[opening], args=args))


async def test_past_the_bound_an_append_pushes_one_event_and_trims_one_copying_none(
        timelines: StoreTimelines, store: Store, admin: Redis) -> None:
    """The previous script read the head and the newest, deleted the list and pushed all 64 back on every
    append past the bound: its time and its replication grew with what the events weighed."""
    bulky = "x" * 4000
    await timelines.append("s-1", {"event": "requested", "pad": bulky})
    for n in range(MAX_EVENTS + 5):
        await timelines.append("s-1", {"event": "noted", "n": n, "pad": bulky})
    before = await calls(admin)
    for n in range(20):
        await timelines.append("s-1", {"event": "noted", "n": MAX_EVENTS + 5 + n, "pad": bulky})
    after = await calls(admin)
    ran = {name: after.get(name, 0) - before.get(name, 0) for name in ("evalsha", "rpush", "ltrim", "lrange", "del",
                                                                       "pexpire", "hincrby")}
    # Each append: one script; the opening's check (one item), one push, one trim, the three keys' lifetimes (the
    # lists' and the kinds' counts'); no delete, and no count for a kind no bound names.
    assert ran == {"evalsha": 20, "rpush": 20, "ltrim": 20, "lrange": 20, "del": 0, "pexpire": 60,
                   "hincrby": 0}, ran
    opening, newest = lists(store, "s-1")
    assert [await admin.llen(opening), await admin.llen(newest)] == [HEAD_EVENTS, MAX_EVENTS - HEAD_EVENTS]
    events = await timelines.read("s-1")
    assert [e.get("n") for e in events] == [None, *range(HEAD_EVENTS - 1), *range(MAX_EVENTS + 25 - 48,
                                                                                  MAX_EVENTS + 25)]


async def test_both_lists_live_a_day_from_the_last_event(
        timelines: StoreTimelines, store: Store, admin: Redis) -> None:
    for n in range(HEAD_EVENTS + 3):
        await timelines.append("s-1", {"event": "requested"} if n == 0 else {"event": "noted", "n": n})
    opening, newest = lists(store, "s-1")
    day = int(KEEP_SECONDS * 1000)
    for key in (opening, newest):
        assert day - 60_000 < await admin.pttl(key) <= day, key
    await admin.pexpire(opening, 1000)
    await admin.pexpire(newest, 1000)
    await timelines.append("s-1", {"event": "ended"})  # each event gives both their day again
    for key in (opening, newest):
        assert day - 60_000 < await admin.pttl(key) <= day, key


async def test_the_counts_of_the_bots_kinds_live_as_the_lists_do(
        timelines: StoreTimelines, store: Store, admin: Redis) -> None:
    """A day from the session's last event, whatever its kind: counts that lapsed before the lists would let a bot
    that reports in a loop fill the timeline again."""
    await timelines.append("s-1", {"event": "requested"})
    for _ in range(3):
        await timelines.append("s-1", {"event": "error"})
    opening, newest = lists(store, "s-1")
    counts = store.key("timeline-kinds", "s-1")
    assert await admin.hgetall(counts) == {"error": "3"}
    day = int(KEEP_SECONDS * 1000)
    assert day - 60_000 < await admin.pttl(counts) <= day
    for key in (opening, counts):
        await admin.pexpire(key, 1000)
    await timelines.append("s-1", {"event": "paced"})  # the dispatcher's own event: the counts' day again too
    for key in (opening, counts):
        assert day - 60_000 < await admin.pttl(key) <= day, key
    assert not await admin.exists(store.key("timeline-kinds", "never-started"))
    await timelines.append("never-started", {"event": "error"})  # a timeline never opened counts nothing
    assert not await admin.exists(store.key("timeline-kinds", "never-started"))


async def test_a_count_made_as_the_lists_write_fails_still_lapses_with_them(
        timelines: StoreTimelines, store: Store, admin: Redis) -> None:
    """A store writer turned the newest list into a string: the append's write of it fails (WRONGTYPE), and the
    script, which Redis does not roll back, has counted the kind already; that count keeps the lists' day, never
    lives for ever."""
    await timelines.append("s-1", {"event": "requested"})
    for n in range(HEAD_EVENTS):
        await timelines.append("s-1", {"event": "paced", "n": n})
    _, newest = lists(store, "s-1")
    await admin.set(newest, "not a list")
    with pytest.raises(StoreUnavailable):  # the WRONGTYPE, as the store client names any refusal
        await timelines.append("s-1", {"event": "ended"})
    counts = store.key("timeline-kinds", "s-1")
    assert await admin.hgetall(counts) == {"ended": "1"}
    assert 0 < await admin.pttl(counts) <= int(KEEP_SECONDS * 1000)


async def test_a_timeline_the_previous_release_wrote_reads_whole_and_takes_this_releases_events(
        timelines: StoreTimelines, store: Store, seal: MessageSeal, admin: Redis) -> None:
    """Its one list (its newest 64 events) is an opening already full: this release's events go to the newest
    list, and the read gives the old list whole, then those."""
    opening, newest = lists(store, "s-1")
    await previously(store, seal, "s-1", {"event": "requested"})
    for n in range(99):
        await previously(store, seal, "s-1", {"event": "noted", "n": n})
    written = list(range(99 - MAX_EVENTS, 99))  # the previous release kept its newest 64 alone
    assert await admin.llen(opening) == MAX_EVENTS and not await admin.exists(newest)
    assert [e.get("n") for e in await timelines.read("s-1")] == written

    for n in range(99, 102):
        await timelines.append("s-1", {"event": "noted", "n": n})
    assert [e.get("n") for e in await timelines.read("s-1")] == [*written, 99, 100, 101]
    for n in range(102, 162):
        await timelines.append("s-1", {"event": "noted", "n": n})
    assert [e.get("n") for e in await timelines.read("s-1")] == [*written, *range(162 - 48, 162)]
    assert await admin.llen(opening) == MAX_EVENTS  # never written again: it lapses a day after its last event
    assert await admin.pttl(opening) > 60_000


async def test_a_previous_release_replica_appending_to_this_releases_timeline_loses_nothing(
        timelines: StoreTimelines, store: Store, seal: MessageSeal) -> None:
    """Its events go to the opening's list (it knows no other), after the opening: read before the newest. (It
    trims that list to its newest 64: past 48 of its own appends, the opening's first events go.)"""
    await timelines.append("s-1", {"event": "requested"})
    for n in range(HEAD_EVENTS + 3):
        await timelines.append("s-1", {"event": "noted", "n": n})
    for name in ("old-a", "old-b"):
        await previously(store, seal, "s-1", {"event": "noted", "n": name})
    await timelines.append("s-1", {"event": "ended"})
    events = await timelines.read("s-1")
    assert [e.get("n") for e in events] == [None, *range(HEAD_EVENTS - 1), "old-a", "old-b",
                                            *range(HEAD_EVENTS - 1, HEAD_EVENTS + 3), None]
    assert events[-1] == {"event": "ended"}


async def test_an_event_sealed_larger_than_a_read_takes_is_refused_before_it_is_sent(
        timelines: StoreTimelines, store: Store, seal: MessageSeal, admin: Redis) -> None:
    await timelines.append("s-1", {"event": "requested"})
    opening, _ = lists(store, "s-1")
    sealed_bytes = len(seal.seal_record(opening, b'{"event":"report","text":""}'))
    largest = {"event": "report", "text": "x" * (MAX_EVENT_BYTES - sealed_bytes)}  # sealed: exactly the most
    await timelines.append("s-1", largest)
    await timelines.append("s-1", {**largest, "text": largest["text"] + "x"})
    assert await timelines.read("s-1") == [{"event": "requested"}, largest]
    assert await admin.llen(opening) == 2  # the larger one never reached the store
    assert refused(seal, "oversized") == 1


async def test_a_newest_list_a_store_writer_grew_reads_bounded_and_is_trimmed_by_the_next_append(
        timelines: StoreTimelines, store: Store, admin: Redis) -> None:
    for n in range(HEAD_EVENTS + 2):
        await timelines.append("s-1", {"event": "requested"} if n == 0 else {"event": "noted", "n": n})
    opening, newest = lists(store, "s-1")
    await admin.rpush(newest, *["pushed"] * 5000)
    events = await timelines.read("s-1")
    assert len(events) == HEAD_EVENTS  # the opening; the newest list's last 64 are the writer's, refused
    await timelines.append("s-1", {"event": "ended"})
    assert await admin.llen(newest) == MAX_EVENTS - HEAD_EVENTS
    assert (await timelines.read("s-1"))[-1] == {"event": "ended"}
