"""A campaign's rows (dispatcher/store/campaign_book.py): the memory book and the store's (a real redis-server,
as the dispatcher's store user) hold one contract: a row claimed by one holder at a time under a lease, at
most `concurrency` at once, none new once stopped; a lease run out goes to the next claimer, first, whatever
the status, and the holder it was taken from writes nothing; a retry comes due at its time; the last row
settled finishes the campaign once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.campaigns.schemas import MAX_RETRY_SPAN_SECONDS
from dispatcher.store.campaign_book import (
    FINISHED,
    HALTED,
    HELD,
    KEEP_SECONDS,
    LAST,
    LOST,
    RUNNING,
    SETTLED,
    STOPPED,
    CampaignBook,
    DuplicateNumber,
    Limits,
    MemoryCampaignBook,
    OverLimit,
)
from dispatcher.store.campaign_records import StoreCampaignBook
from dispatcher.store.client import Store
from tests.dispatcher.store.conftest import settings_for
from tests.support.redis_server import RedisServer

NOW = 1_000_000.0
LEASE = 30.0


@pytest.fixture
async def store_book(redis: RedisServer, prefix: str) -> AsyncIterator[StoreCampaignBook]:
    store = Store(settings_for(redis, "r-a", prefix))
    yield StoreCampaignBook(store)
    await store.aclose()


@pytest.fixture(params=["memory", "store"])
async def book(request: pytest.FixtureRequest) -> AsyncIterator[CampaignBook]:
    if request.param == "memory":
        yield MemoryCampaignBook()
        return
    server: RedisServer = request.getfixturevalue("redis")
    store = Store(settings_for(server, "r-a", request.getfixturevalue("prefix")))
    yield StoreCampaignBook(store)
    await store.aclose()


async def campaign(book: CampaignBook, numbers: list[str], *, concurrency: int = 2,
                   skipped: frozenset[str] = frozenset(), status: str = RUNNING) -> str:
    await book.open("cmp_1", {"spec": "{}", "created": NOW, "concurrency": concurrency, "owner": "k"})
    states: list[dict[str, Any]] = [{"status": "skipped" if n in skipped else "pending"} for n in numbers]
    ready = [n not in skipped for n in numbers]
    assert await book.append("cmp_1", [{"to": n} for n in numbers], states, ready, ready.count(False)) == len(numbers)
    assert await book.set_status("cmp_1", status, NOW) is not None
    return "cmp_1"


async def test_rows_are_claimed_in_order_at_most_concurrency_at_once(book: CampaignBook) -> None:
    cid = await campaign(book, ["+1", "+2", "+3"], concurrency=2)
    first = await book.claim(cid, "a", NOW, LEASE)
    second = await book.claim(cid, "b", NOW, LEASE)
    assert first is not None and second is not None
    assert (first.call["to"], second.call["to"]) == ("+1", "+2")
    assert await book.claim(cid, "a", NOW, LEASE) is None  # two in progress: the concurrency
    record = await book.read(cid)
    assert record is not None and (record.pending, record.in_progress) == (1, 2)


async def test_a_lease_run_out_goes_to_the_next_claimer_and_its_first_holder_writes_nothing(
        book: CampaignBook) -> None:
    cid = await campaign(book, ["+1", "+2"], concurrency=1)
    held = await book.claim(cid, "a", NOW, LEASE)
    assert held is not None
    assert await book.note(cid, held.row, held.lease, {"status": "calling", "attempts": 1}, ("placed",))
    assert await book.claim(cid, "b", NOW + LEASE - 1, LEASE) is None  # still held
    assert await book.set_status(cid, STOPPED, NOW) == (STOPPED, False)
    taken = await book.claim(cid, "b", NOW + LEASE + 1, LEASE)  # stopped, yet its call is followed
    assert taken is not None and taken.row == held.row and taken.state["status"] == "calling"
    assert not await book.renew(cid, held.row, held.lease, NOW + 100)
    assert await book.settle(cid, held.row, held.lease, {"status": "done"}, None, ("outcome:busy",), NOW) == LOST
    assert await book.claim(cid, "c", NOW + LEASE + 2, LEASE) is None  # stopped: no new row
    record = await book.read(cid)
    assert record is not None and record.counts.get("outcome:busy") is None and record.counts["placed"] == 1


async def test_a_retry_comes_due_at_its_time_and_the_last_row_finishes_the_campaign_once(book: CampaignBook) -> None:
    cid = await campaign(book, ["+1", "+2"], concurrency=2, skipped=frozenset({"+2"}))
    held = await book.claim(cid, "a", NOW, LEASE)
    assert held is not None and await book.claim(cid, "a", NOW, LEASE) is None  # +2 skipped: never claimed
    assert await book.settle(cid, held.row, held.lease, {"status": "retrying"}, NOW + 60, ("retries",), NOW) == SETTLED
    record = await book.read(cid)
    assert record is not None and (record.retrying, record.in_progress, record.counts["skipped"]) == (1, 0, 1)
    assert await book.claim(cid, "a", NOW + 59, LEASE) is None
    again = await book.claim(cid, "b", NOW + 61, LEASE)
    assert again is not None and again.row == held.row
    assert await book.settle(cid, again.row, again.lease, {"status": "done"}, None, ("outcome:busy",), NOW + 62) == LAST
    record = await book.read(cid)
    assert record is not None and record.meta["status"] == FINISHED and record.counts["outcome:busy"] == 1
    assert cid not in await book.live(NOW + 10**9)
    assert await book.append(cid, [{"to": "+3"}], [{}], [True], 0) is None  # finished: nothing added
    assert await book.set_status(cid, RUNNING, NOW) == (FINISHED, False)
    rows = await book.rows(cid, 0, 10)
    assert [(call["to"], state["status"]) for call, state in rows] == [("+1", "done"), ("+2", "skipped")]


async def test_a_campaign_of_skipped_rows_alone_finishes_when_started(book: CampaignBook) -> None:
    await book.open("cmp_1", {"spec": "{}", "created": NOW, "concurrency": 1, "owner": "k"})
    await book.append("cmp_1", [{"to": "+1"}], [{"status": "skipped"}], [False], 1)
    assert await book.set_status("cmp_1", RUNNING, NOW) == (FINISHED, True)


async def test_a_claim_taken_over_by_the_same_worker_still_fences_the_old_one(book: CampaignBook) -> None:
    """The lease's fence is one per claim, not one per worker: a replica paused (GC, SIGSTOP) past its lease
    re-claims its own expired row on resume (its feeder wakes too); the stale task's writes are refused."""
    cid = await campaign(book, ["+14155550100"])
    stale = await book.claim(cid, "replica-a", NOW, LEASE)
    fresh = await book.claim(cid, "replica-a", NOW + LEASE + 1, LEASE)  # the same worker, after a pause
    assert stale is not None and fresh is not None and stale.row == fresh.row and stale.lease != fresh.lease
    # The stale task's write (its call ended busy long ago: retry) is refused: its claim was taken over.
    said = await book.settle(cid, stale.row, stale.lease, {"status": "retrying"}, NOW + 99, ("retries",),
                             NOW + LEASE + 2)
    assert said == LOST
    assert not await book.renew(cid, stale.row, stale.lease, NOW + 200)
    assert await book.renew(cid, fresh.row, fresh.lease, NOW + 200)


async def test_a_row_claimed_before_its_campaign_stopped_is_fenced_until_resumed_then_held(
        book: CampaignBook) -> None:
    """The fence just before the carrier's create: a campaign stopped since the claim halts the call (its lease
    not renewed, so it runs out if the holder dies), a resume lets it through, another claim's holder is LOST."""
    cid = await campaign(book, ["+1"], concurrency=1)
    held = await book.claim(cid, "a", NOW, LEASE)
    assert held is not None
    assert await book.fence(cid, held.row, held.lease, NOW + 60) == HELD
    assert await book.set_status(cid, STOPPED, NOW + 1) == (STOPPED, False)
    assert await book.fence(cid, held.row, held.lease, NOW + 90) == HALTED
    taken = await book.claim(cid, "b", NOW + 61, LEASE)  # the lease the halt did not renew ran out at NOW + 60
    assert taken is not None and taken.row == held.row
    assert await book.fence(cid, held.row, held.lease, NOW + 90) == LOST
    assert await book.settle(cid, taken.row, taken.lease, {"status": "pending"}, 0.0, (), NOW + 62) == SETTLED
    record = await book.read(cid)
    assert record is not None and (record.pending, record.in_progress, record.meta["status"]) == (1, 0, STOPPED)
    assert await book.set_status(cid, RUNNING, NOW + 63) == (RUNNING, False)
    again = await book.claim(cid, "c", NOW + 64, LEASE)
    assert again is not None and await book.fence(cid, again.row, again.lease, NOW + 120) == HELD


async def test_only_campaigns_with_something_due_are_live(book: CampaignBook) -> None:
    """A replica's look reads the campaigns due, never those idle: stopped with no call under way, waiting for
    a retry's time, at their concurrency until a lease runs out, or finished."""
    cid = await campaign(book, ["+1"], concurrency=1, status=STOPPED)
    assert cid not in await book.live(NOW)  # stopped, nothing under way
    assert await book.set_status(cid, RUNNING, NOW) == (RUNNING, False)
    assert cid in await book.live(NOW)  # a row due now
    held = await book.claim(cid, "a", NOW, LEASE)
    assert held is not None
    assert cid not in await book.live(NOW + 1)  # its one row under way, its lease held
    assert cid in await book.live(NOW + LEASE + 1)  # its lease run out: taken again
    assert await book.settle(cid, held.row, held.lease, {"status": "retrying"}, NOW + 600, ("retries",), NOW) == SETTLED
    assert cid not in await book.live(NOW + 599) and cid in await book.live(NOW + 600)


async def test_every_live_campaign_is_worked_not_only_the_newest(store_book: StoreCampaignBook, admin: Redis) -> None:
    """The live index is read page after page: 10,000 other campaigns due hide no other key's."""
    await store_book.open("cmp_victim", {"spec": "{}", "created": NOW, "concurrency": 5, "owner": "k"})
    assert await store_book.append("cmp_victim", [{"to": "+14155550100"}], [{"status": "pending"}], [True], 0) == 1
    assert await store_book.set_status("cmp_victim", RUNNING, NOW) == (RUNNING, False)
    newer = {f"cmp_{n:016x}": NOW + 1 + n for n in range(10_000)}  # as 10,000 other keys' campaigns, due
    await admin.zadd(store_book._live, newer)  # noqa: SLF001 - the index the worker reads
    due = await store_book.live(NOW + 20_000)
    assert "cmp_victim" in due and len(due) == 10_001


async def test_a_key_keeps_at_most_its_bounds_of_campaigns_and_rows(book: CampaignBook) -> None:
    limits = Limits(live=2, key_rows=3, rows=2)
    meta = {"spec": "{}", "created": NOW, "concurrency": 1, "owner": "k"}
    for cid in ("cmp_1", "cmp_2"):
        await book.open(cid, meta, limits)
    with pytest.raises(OverLimit) as refused:
        await book.open("cmp_3", meta, limits)
    assert (refused.value.which, refused.value.have) == ("live", 2)
    await book.open("cmp_other", {**meta, "owner": "another"}, limits)  # another key's bound is its own
    with pytest.raises(OverLimit) as refused:
        await book.append("cmp_1", [{"to": "+1"}] * 3, [{}] * 3, [True] * 3, 0, limits)
    assert refused.value.which == "rows"
    assert await book.append("cmp_1", [{"to": "+1"}] * 2, [{}] * 2, [True] * 2, 0, limits) == 2
    with pytest.raises(OverLimit) as refused:
        await book.append("cmp_2", [{"to": "+1"}] * 2, [{}] * 2, [True] * 2, 0, limits)
    assert (refused.value.which, refused.value.have) == ("key_rows", 2)
    assert await book.set_status("cmp_2", RUNNING, NOW) == (FINISHED, True)  # no row: finished, a place freed
    await book.open("cmp_3", meta, limits)
    assert set(await book.listed("k", 10)) == {"cmp_1", "cmp_2", "cmp_3"}
    assert await book.listed("another", 10) == ["cmp_other"]


async def test_rows_added_late_expire_with_their_campaign(store_book: StoreCampaignBook, admin: Redis,
                                                           prefix: str) -> None:
    """Rows added renew every record of the campaign together: none outlives its meta, and a running campaign
    never loses its meta while its rows wait."""
    await store_book.open("cmp_late", {"spec": "{}", "created": NOW, "concurrency": 5, "owner": "k"})
    await store_book.append("cmp_late", [{"to": "+14155550100"}], [{"status": "pending"}], [True], 0)
    meta, rows, counts = (f"{prefix}campaign:cmp_late:{part}" for part in ("meta", "rows", "counts"))
    await admin.pexpire(meta, 60_000)  # as a campaign 30 days old less a minute
    await store_book.append("cmp_late", [{"to": "+14155550101"}], [{"status": "pending"}], [True], 0)
    assert abs(await admin.pttl(rows) - await admin.pttl(meta)) <= 1000
    assert abs(await admin.pttl(counts) - await admin.pttl(meta)) <= 1000


def test_a_row_s_retries_fit_in_the_time_its_campaign_is_kept() -> None:
    """Retries spanning past the records' keep would never be placed: the campaign would never finish."""
    assert MAX_RETRY_SPAN_SECONDS < KEEP_SECONDS


async def test_a_number_already_in_the_campaign_is_refused_and_nothing_of_the_request_added(
        book: CampaignBook) -> None:
    cid = await campaign(book, ["+1", "+2"])
    with pytest.raises(DuplicateNumber) as refused:
        await book.append(cid, [{"to": "+3"}, {"to": "+2"}], [{}, {}], [True, True], 0)
    assert (refused.value.number, refused.value.row) == ("+2", "000001")
    record = await book.read(cid)
    assert record is not None and record.meta["total"] == "2"
    assert await book.append(cid, [{"to": "+3"}], [{}], [True], 0) == 3


async def test_a_campaign_opened_before_the_key_s_indexes_takes_rows_and_is_worked(
        store_book: StoreCampaignBook, admin: Redis, prefix: str) -> None:
    """A campaign a dispatcher of the version before opened (its meta names no key index) still takes rows,
    bounded per campaign, and is claimed as before."""
    meta = f"{prefix}campaign:cmp_old:meta"
    await admin.hset(meta, mapping={"status": "running", "total": 0, "spec": "{}", "created": NOW, "concurrency": 1,
                                    "owner": "k"})
    await admin.hset(f"{prefix}campaign:cmp_old:counts", "skipped", 0)
    assert await store_book.append("cmp_old", [{"to": "+1"}], [{"status": "pending"}], [True], 0) == 1
    assert "cmp_old" in await store_book.live(NOW)
    assert await store_book.claim("cmp_old", "a", NOW, LEASE) is not None


async def test_every_key_s_campaigns_are_listed_newest_first_a_page_at_a_time_within_the_bound(
        book: CampaignBook) -> None:
    """An admin's list: every key's campaigns in one index, paged by offset; past `Limits.every` the oldest
    drop out of it (their key's own index still lists them); a campaign forgotten drops out of it."""
    limits = Limits(every=3)
    for n, owner in enumerate(["k", "another", "k", "third"]):  # opened oldest first
        await book.open(f"cmp_{n}", {"spec": "{}", "created": NOW + n, "concurrency": 1, "owner": owner}, limits)
    assert await book.listed(None, 10) == ["cmp_3", "cmp_2", "cmp_1"]  # cmp_0: past the bound
    assert await book.listed(None, 2) == ["cmp_3", "cmp_2"] and await book.listed(None, 2, 2) == ["cmp_1"]
    assert await book.listed("k", 10) == ["cmp_2", "cmp_0"]
    await book.forget("cmp_2", "k")
    assert await book.listed(None, 10) == ["cmp_3", "cmp_1"]


async def test_every_key_s_index_expires_with_its_campaigns(store_book: StoreCampaignBook, admin: Redis,
                                                           prefix: str) -> None:
    """The index is kept as long as its newest campaign and drops those whose records expired when the next
    campaign is opened: it outgrows neither the campaigns kept nor `Limits.every`."""
    await store_book.open("cmp_gone", {"spec": "{}", "created": NOW, "concurrency": 1, "owner": "k"})
    every = f"{prefix}campaigns:every"
    assert 0 < await admin.pttl(every) <= KEEP_SECONDS * 1000
    await admin.zadd(every, {"cmp_gone": 1.0})  # as a campaign whose 30 days ran out
    await store_book.open("cmp_new", {"spec": "{}", "created": NOW, "concurrency": 1, "owner": "another"})
    assert await store_book.listed(None, 10) == ["cmp_new"]
