"""Hostile review of the store's campaigns (dispatcher/store/campaign_records.py, campaign_book.py): each test
fails today and names what breaks (review_campaigns). A real redis-server as the dispatcher's store user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.campaigns.schemas import MAX_ATTEMPTS, MAX_RETRY_AFTER_SECONDS
from dispatcher.store.campaign_book import KEEP_SECONDS, RUNNING, CampaignBook
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


async def _campaign(book: CampaignBook, cid: str, numbers: list[str], *, created: float = NOW,
                    owner: str = "k", status: str = RUNNING) -> None:
    await book.open(cid, {"spec": "{}", "created": created, "concurrency": 5, "owner": owner})
    states: list[dict[str, Any]] = [{"status": "pending"} for _ in numbers]
    assert await book.append(cid, [{"to": n} for n in numbers], states, [True] * len(numbers), 0) == len(numbers)
    assert await book.set_status(cid, status, created) is not None


@pytest.mark.xfail(strict=True, reason="review_campaigns: live() reads only the 10,000 newest live campaigns")
async def test_every_live_campaign_is_worked_not_only_the_10000_newest(store_book: StoreCampaignBook,
                                                                        admin: Redis) -> None:
    """`live()` is `ZRANGE … REV LIMIT 0 10000` (campaign_records.py:232): once any keys together have 10,000
    newer live campaigns (stopped ones stay live for 30 days), an older running campaign of another key is
    never fed by any replica's worker (worker.py:98): a cross-key denial of service."""
    await _campaign(store_book, "cmp_victim", ["+14155550100"])
    newer = {f"cmp_{n:016x}": NOW + 1 + n for n in range(10_000)}  # as 10,000 `"start": false` campaigns
    await admin.zadd(store_book._live, newer)  # noqa: SLF001 - the index the worker reads
    assert "cmp_victim" in await store_book.live()


@pytest.mark.xfail(strict=True, reason="review_campaigns: _APPEND re-arms rows/state/ready's TTL, not meta's")
async def test_rows_added_late_expire_with_their_campaign(store_book: StoreCampaignBook, admin: Redis,
                                                           prefix: str) -> None:
    """`_APPEND` re-arms PEXPIRE on rows/state/ready only (campaign_records.py:61, `for i = 2, 4`), never on
    meta or counts: rows added on day 29 outlive their campaign's meta by 29 days, unreachable (no meta, out of
    the indexes once `forget` runs) yet kept in the store's memory; a running campaign loses its meta
    mid-way and its rows are never claimed again (`_CLAIM` returns false without `status`)."""
    await _campaign(store_book, "cmp_late", ["+14155550100"], status="stopped")
    meta, rows = (f"{prefix}campaign:cmp_late:{part}" for part in ("meta", "rows"))
    await admin.pexpire(meta, 60_000)  # the campaign is 30 days old less a minute
    await store_book.append("cmp_late", [{"to": "+14155550101"}], [{"status": "pending"}], [True], 0)
    assert await admin.pttl(rows) <= await admin.pttl(meta) + 1000


@pytest.mark.xfail(strict=True, reason="review_campaigns: retries span 63 days, records kept 30")
def test_a_row_s_retries_fit_in_the_time_its_campaign_is_kept() -> None:
    """`retry.after_seconds` ≤ 7 days × `attempts` ≤ 10 (schemas.py:249-250) spans 63 days; the campaign's
    records expire 30 days after creation (campaign_book.py:23): its later retries are never placed, it never
    finishes and `campaign.finished` is never sent."""
    assert MAX_RETRY_AFTER_SECONDS * (MAX_ATTEMPTS - 1) <= KEEP_SECONDS
