"""Hostile review of the store's campaigns (dispatcher/store/campaign_records.py, campaign_book.py): each test
fails today and names what breaks (review_campaigns). A real redis-server as the dispatcher's store user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

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


@pytest.mark.xfail(strict=True, reason="review_campaigns: retries span 63 days, records kept 30")
def test_a_row_s_retries_fit_in_the_time_its_campaign_is_kept() -> None:
    """`retry.after_seconds` ≤ 7 days × `attempts` ≤ 10 (schemas.py:249-250) spans 63 days; the campaign's
    records expire 30 days after creation (campaign_book.py:23): its later retries are never placed, it never
    finishes and `campaign.finished` is never sent."""
    assert MAX_RETRY_AFTER_SECONDS * (MAX_ATTEMPTS - 1) <= KEEP_SECONDS
