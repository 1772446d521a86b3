"""`GET /usage` cannot keep the store busy: a query reads every key's fields of each day it spans (a
second of the store for 400 full days), so a replica answers one query per key at a time and a few in
all, the rest `429` with the way out. A real `python -m dispatcher` on a real redis-server whose
400 days each hold the most fields a day may."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dispatcher.store.client import DEFAULT_PREFIX
from dispatcher.usage.rollups import MAX_FIELDS, MAX_QUERY_DAYS, field_of
from tests.replicas.conftest import AUTH, start_fleet
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def fill_every_day(store: RedisServer) -> None:
    """Each of the days a query may span, as full as a day may be (other keys' sums)."""
    admin = store.admin()
    today = datetime.now(UTC).date()
    day = {field_of(f"key-{n % 40}", "v1", f"llm:model-{n}", "prompt_tokens"): 1.0 for n in range(MAX_FIELDS)}
    with admin.pipeline(transaction=False) as pipe:
        for n in range(MAX_QUERY_DAYS):
            pipe.hset(f"{DEFAULT_PREFIX}usage:{(today - timedelta(days=n)).isoformat()}", mapping=day)
        pipe.execute()


async def asked_at_once(base_url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=120) as client:
        return list(await asyncio.gather(*(client.get(f"/usage?since={MAX_QUERY_DAYS}d") for _ in range(count))))


def test_one_key_asking_for_every_day_many_times_at_once_gets_one_answer_and_429s(
        tmp_path: Path, store: RedisServer) -> None:
    fill_every_day(store)
    with start_fleet(tmp_path, store, 1) as fleet:
        answers = asyncio.run(asked_at_once(fleet.replicas[0].base_url, 6))
        codes = sorted(answer.status_code for answer in answers)
        assert codes.count(200) >= 1 and codes.count(429) >= 4, codes  # not six scans of 400 days at once
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert refused.json()["error"]["code"] == "usage_query_running"
        assert "wait for its answer" in refused.json()["error"]["message"] and refused.headers["retry-after"]
        again = httpx.get(f"{fleet.replicas[0].base_url}/usage?since=7d", headers=AUTH, timeout=60)
        assert again.status_code == 200, again.text  # once answered, the key asks again
