"""The releases' traffic record and audit trail in a real redis-server, written and read as the AWS
stack's store user (its access string: tests/support/redis_server.py), under the deployment's prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.store.client import Store
from dispatcher.store.coordination import HISTORY_KEPT
from dispatcher.store.release_book import StoreReleaseBook
from tests.support.redis_server import RedisServer
from tests.support.releases import release_env


def record(ms: int, weights: dict[str, int]) -> dict[str, object]:
    return {"weights": weights, "stable": "a", "version": [ms, "eu"], "changed_by": "ops", "reason": "", "held": {}}


async def test_the_stack_user_writes_compares_and_reads_the_traffic_under_the_prefix(
        store: Store, redis: RedisServer, admin: Redis, prefix: str) -> None:
    book = StoreReleaseBook(store)
    assert await book.read() is None
    assert await book.write(record(1, {"a": 100}), None)
    assert not await book.write(record(2, {"a": 50, "b": 50}), None)  # another writer got there first
    assert not await book.write(record(2, {"a": 50, "b": 50}), [9, "eu"])  # not the version it read
    assert await book.write(record(2, {"a": 90, "b": 10}), [1, "eu"])
    assert await book.read() == record(2, {"a": 90, "b": 10})
    assert await admin.keys("*releases*") == [f"{prefix}releases:traffic"]
    assert redis.refused() == []


async def test_the_audit_trail_is_newest_first_and_capped(store: Store, redis: RedisServer, admin: Redis,
                                                           prefix: str) -> None:
    book = StoreReleaseBook(store)
    for n in range(HISTORY_KEPT + 3):
        await book.note({"n": n})
    assert [c["n"] for c in await book.history(3)] == [HISTORY_KEPT + 2, HISTORY_KEPT + 1, HISTORY_KEPT]
    assert len(await book.history(HISTORY_KEPT + 10)) == HISTORY_KEPT
    assert await admin.llen(f"{prefix}releases:history") == HISTORY_KEPT
    assert redis.refused() == []


@pytest.mark.parametrize(("garbage", "version_kept"), [
    ("not json {", True), (json.dumps({"weights": {"stable": 300}, "stable": "stable"}), True),
    (json.dumps(["a", "list"]), True), (json.dumps({"weights": {"stable": 100}, "stable": "stable"}), False)])
async def test_a_record_that_is_no_traffic_is_rewritten_from_the_configuration_and_changes_go_on(
        store: Store, admin: Redis, prefix: str, tmp_path: Path, garbage: str, version_kept: bool) -> None:
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), StoreReleaseBook(store))
    await releases.change(lambda t, v: t.with_weight("next", 30, "ops", v))
    await admin.hset(f"{prefix}releases:traffic", "record", garbage)  # by hand, or by something else
    if not version_kept:
        await admin.hdel(f"{prefix}releases:traffic", "version")

    await releases.refresh()
    changed = await releases.change(lambda t, v: t.with_weight("next", 20, "ops", v))
    assert dict(changed.weights) == {"stable": 80, "next": 20}
    assert Traffic.from_json(await StoreReleaseBook(store).read()) == changed
