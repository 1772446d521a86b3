"""Finding: `GET /usage` ran two queries at once per replica, the admin's included, and a key could ask
again as soon as answered: two client keys each asking for their own 400 days in a loop held both
slots, and the admin's (and every other key's) reads were answered `429 usage_busy`. Now a slot is
kept for admin keys, a client key's queries are charged by the days they read (400 a minute after
the first 800), and
the same query again within a few seconds is answered from what was just read.
The real app on a real redis-server store (a day is one script call there, as in production)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, TEAM_B, bearer
from tests.security.conftest import DEPLOYMENT_SECRET, WAIT
from tests.support.dispatcher_server import in_process
from tests.support.redis_server import redis_server

LONGEST = "?since=400d"
ADMIN_READS = 12


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    named = ((hash_api_key(TEAM_A), "team-a"), (hash_api_key(TEAM_B), "team-b"))
    settings = Settings(api_key_hashes=frozenset(h for h, _ in named), api_key_names=named,
                        admin_key_hashes=frozenset({hash_api_key(ADMIN)}), bot_channel_token=DEPLOYMENT_SECRET)
    with redis_server(tmp_path) as store:
        app = create_app(settings, env={**store.env, "REPLICA_ID": "r-a", "RESERVE_MAX_IDLE": "0"}, rooms=None)
        async with in_process(app, served=False) as running:
            assert app.state.voicefleet.usage is not None
            yield running.client


def one_day(n: int) -> str:
    """A different day each time: the admin's reads are real queries, never the same one again."""
    day = (datetime.now(UTC).date() - timedelta(days=n)).isoformat()
    return f"?since={day}&until={day}"


async def test_two_client_keys_asking_for_400_days_in_a_loop_leave_the_admin_its_reads(api: httpx.AsyncClient) -> None:
    stop = asyncio.Event()
    hogs: dict[str, collections.Counter[str]] = {TEAM_A: collections.Counter(), TEAM_B: collections.Counter()}

    async def hog(key: str) -> None:
        asked = 0
        while not stop.is_set():  # asks again as soon as answered, as the finding's keys did
            asked += 1  # each time a day fewer: never the same query, which is answered from memory
            answer = await api.get(f"/usage?since={400 - asked % 300}d", headers=bearer(key))
            code = answer.json().get("error", {}).get("code", "") if answer.status_code != 200 else ""
            hogs[key][f"{answer.status_code} {code}".strip()] += 1
            if answer.status_code == 429:
                await asyncio.sleep(0.01)

    hogging = [asyncio.create_task(hog(key)) for key in hogs]
    try:
        while not all(counts["200"] for counts in hogs.values()):  # each hog read its 400 days once
            await asyncio.sleep(0.01)
        admin = collections.Counter()
        for n in range(ADMIN_READS):
            answer = await api.get(f"/usage{one_day(n)}", headers=bearer(ADMIN))
            admin[str(answer.status_code)] += 1
            await asyncio.sleep(0.02)
        assert admin == {"200": ADMIN_READS}, (admin, hogs)

        def exhausted() -> bool:  # each hog, past its first 800 days, waits for its minute
            return all(counts["429 usage_days_exhausted"] for counts in hogs.values())

        async with asyncio.timeout(WAIT):
            while not exhausted():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*hogging)


async def test_a_query_is_charged_by_its_days_and_the_same_query_again_read_once(api: httpx.AsyncClient) -> None:
    first = await api.get(f"/usage{LONGEST}", headers=bearer(TEAM_A))
    assert first.status_code == 200, first.text
    again = await api.get(f"/usage{LONGEST}", headers=bearer(TEAM_A))  # what was just read: no day charged
    assert again.status_code == 200 and again.json() == first.json(), again.text
    assert (await api.get("/usage?since=399d", headers=bearer(TEAM_A))).status_code == 200  # two back to back
    shorter = await api.get("/usage?since=398d", headers=bearer(TEAM_A))
    assert shorter.status_code == 429, shorter.text
    error = shorter.json()["error"]
    assert error["code"] == "usage_days_exhausted" and "fewer days" in error["message"], error
    assert 0 < float(shorter.headers["Retry-After"]) <= 60  # the 398 days' share of a minute, at most
    assert (await api.get("/usage?since=399d", headers=bearer(TEAM_B))).status_code == 200  # its own minute
    assert (await api.get("/usage?since=399d", headers=bearer(ADMIN))).status_code == 200  # an admin's: not charged
