"""The daily usage files written from the shared rollups (dispatcher/usage/daily_files.py): two
writers on one real redis-server (signed in as the stack's store user) into one real folder store
give one file a day that equals the rollups, rows neither lost nor doubled whatever their order; a
store that hangs or fails is timed out and tried again, and a write that never landed is written at
the next round, by either writer."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.artifacts.store import STORE_UNREACHABLE, StoreError
from dispatcher.store.client import Store, StoreSettings
from dispatcher.usage import daily_files
from dispatcher.usage.daily_files import MemoryDayMarks, StoreDayMarks, UsageFiles
from dispatcher.usage.day_file import day_csv
from dispatcher.usage.rollups import Amount, MemoryRollups, StoreRollups
from dispatcher.usage.usage_count import SessionUse
from tests.support.redis_server import redis_server

DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


class FlakyFolder(LocalFolderStore):
    """The real folder store, whose first puts hang (`hangs`) or fail (`fails`) as an unreachable
    bucket's do: the faults a real store gives, the write itself the folder's own."""

    def __init__(self, root: Path, hangs: int = 0, fails: int = 0) -> None:
        super().__init__(root, SignedPaths(b"k" * 32))
        self.hangs, self.fails, self.puts = hangs, fails, 0

    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        self.puts += 1
        if self.hangs:
            self.hangs -= 1
            await asyncio.sleep(3600)
        if self.fails:
            self.fails -= 1
            raise StoreError("503 Slow Down", STORE_UNREACHABLE)
        await super().put(key, data, content_type, tags)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    with redis_server(tmp_path) as server:
        both = tuple(Store(StoreSettings.from_env({**server.env, "REPLICA_ID": name})) for name in ("r-a", "r-b"))
        yield both  # type: ignore[misc]
        for store in both:
            await store.redis.aclose()


def session(n: int, key: str) -> SessionUse:
    return SessionUse(f"s-{n}", DAY, key, "main", (Amount("", "sessions", 1.0), Amount("", "seconds", 60.0 + n),
                                                   Amount("", "machine_usd", 0.001 * n)))


def writer(store: Store, folder: LocalFolderStore, put_timeout: float = 5.0) -> UsageFiles:
    return UsageFiles(StoreRollups(store, keep_days=30), folder, StoreDayMarks(store), every=1.0,
                      clock=lambda: NOW, put_timeout=put_timeout)


def file_rows(folder: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO((folder / "usage" / "2026-11-27.csv").read_text())))


async def test_two_writers_give_one_file_equal_to_the_shared_rollups(stores, tmp_path: Path) -> None:
    a, b = stores
    folder = LocalFolderStore(tmp_path / "bucket", SignedPaths(b"k" * 32))
    rollups = StoreRollups(a, keep_days=30)
    for n in range(6):  # ended at either replica
        await StoreRollups(stores[n % 2], keep_days=30).add(session(n, "team-a" if n % 3 else "team-b"))
    first, second = writer(a, folder), writer(b, folder)
    wrote = await asyncio.gather(first.write_day(DAY), second.write_day(DAY))
    assert sorted(wrote) == [False, True]  # one writes it; the other found the day's lease taken
    expected = day_csv(await rollups.grouped(DAY, DAY, "key", None))
    assert (tmp_path / "bucket" / "usage" / "2026-11-27.csv").read_bytes() == expected
    rows = file_rows(tmp_path / "bucket")
    assert rows[0] == ["key", "sessions", "minutes", "cost_usd", "not_priced"]
    assert [r[:2] for r in rows[1:]] == [["team-a", "4"], ["team-b", "2"], ["TOTAL", "6"]]
    # Unchanged: neither writes it again. A session more, at either: the next to try rewrites it whole.
    assert await first.write_day(DAY) is False and await second.write_day(DAY) is False
    await StoreRollups(b, keep_days=30).add(session(6, "team-b"))
    await StoreRollups(b, keep_days=30).add(session(6, "team-b"))  # its end reported twice: added once
    assert await second.write_day(DAY) is True
    assert [r[:2] for r in file_rows(tmp_path / "bucket")[1:]] == [["team-a", "4"], ["team-b", "3"], ["TOTAL", "7"]]
    assert sorted(p.name for p in (tmp_path / "bucket" / "usage").iterdir()) == ["2026-11-27.csv"]


async def test_a_put_that_hangs_is_timed_out_and_tried_again(stores, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(daily_files, "RETRY_SECONDS", (0.01, 0.01))
    a, _ = stores
    await StoreRollups(a, keep_days=30).add(session(1, "team-a"))
    folder = FlakyFolder(tmp_path / "bucket", hangs=1, fails=1)
    async with asyncio.timeout(10):  # the hung put is given up after its 0.5 s, not waited on
        assert await writer(a, folder, put_timeout=0.5).write_day(DAY) is True
    assert folder.puts == 3
    assert file_rows(tmp_path / "bucket")[-1][:2] == ["TOTAL", "1"]


async def test_a_write_that_never_landed_is_written_at_the_next_round_by_either(stores, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(daily_files, "RETRY_SECONDS", (0.01, 0.01))
    a, b = stores
    await StoreRollups(a, keep_days=30).add(session(1, "team-a"))
    down = FlakyFolder(tmp_path / "bucket", fails=2 * daily_files.PUT_TRIES)  # yesterday's and today's
    await writer(a, down).write_due()  # every try failed: said in the log, nothing marked as written
    assert not (tmp_path / "bucket" / "usage" / "2026-11-27.csv").exists()
    assert await writer(b, FlakyFolder(tmp_path / "bucket")).write_day(DAY) is True  # the lease was let go
    assert file_rows(tmp_path / "bucket")[-1][:2] == ["TOTAL", "1"]


async def test_a_writer_that_lost_its_lease_does_not_write_over_the_holder(stores, tmp_path: Path) -> None:
    a, b = stores
    await StoreRollups(a, keep_days=30).add(session(1, "team-a"))
    marks = StoreDayMarks(a)
    assert await marks.take(DAY)
    await a.redis.delete(a.key("usage", "file", "lease", DAY.isoformat()))  # it ran out while this one paused
    assert await StoreDayMarks(b).take(DAY)  # another replica holds it now
    folder = FlakyFolder(tmp_path / "bucket")
    assert await UsageFiles(StoreRollups(a, keep_days=30), folder, marks, every=1.0)._put(DAY, b"old") is False
    assert folder.puts == 0


async def test_two_regions_sharing_a_bucket_each_write_their_own_file(tmp_path: Path) -> None:
    """Each region keeps its own sums (its own store): in one bucket, neither writes over the other's."""
    folder = LocalFolderStore(tmp_path / "bucket", SignedPaths(b"k" * 32))
    for region, count in (("eu", 2), ("us", 1)):
        rollups = MemoryRollups(keep_days=30)
        for n in range(count):
            await rollups.add(session(n, "team-a"))
        files = UsageFiles(rollups, folder, MemoryDayMarks(), every=1.0, clock=lambda: NOW, region=region)
        assert await files.write_day(DAY) is True
    for region, count in (("eu", "2"), ("us", "1")):
        lines = (tmp_path / "bucket" / "usage" / region / "2026-11-27.csv").read_text().splitlines()
        assert lines[-1].split(",")[:2] == ["TOTAL", count]
