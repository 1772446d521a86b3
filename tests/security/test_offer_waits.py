"""Finding: an offer on a session still `starting` waited for its bot by reading the provider once
a poll (`GCE_POLL_SECONDS`, `ECS_POLL_SECONDS`) for up to `START_WAIT_SECONDS`, each offer with a
wait of its own and none from the key's read bucket: one key's 25 offers a second made ~294
Compute Engine reads a second for 30 s, a quota every tenant's starts share. Now every wait for a
session at a replica is one wait (offers and `POST /start?wait=started` alike): a session is read
once a poll however many wait for it.

A real `python -m dispatcher` on Compute Engine (the project's fake API, whose VM stays
`PROVISIONING`: its bot never dials) with a real redis-server as the stack's store user; the fake
counts the dispatcher's reads of the session's instance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fixtures import fake_gce
from tests.fakes.gce import FakeGce
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer, redis_server

__all__ = ["fake_gce"]
pytestmark = pytest.mark.slow  # a dispatcher and a redis-server

KEY = "offer-waits-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
POLL_SECONDS = 0.2
WAIT_SECONDS = 4.0  # START_WAIT_SECONDS: each offer's wait ends in a 504 after it
OFFERS = 12
OFFER = {"sdp": "v=0\r\n", "type": "offer"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def offers(base: str, session_id: str) -> list[httpx.Response]:
    async with api_client(base_url=base, headers=AUTH, timeout=60) as http:
        return list(await asyncio.gather(*(http.post(f"/sessions/{session_id}/api/offer", json=OFFER)
                                           for _ in range(OFFERS))))


def gce_env(store: RedisServer, fake_gce: FakeGce) -> dict[str, str]:
    return {"MACHINES": "gce", "DISPATCHER_API_KEYS": KEY, **fake_gce.env, **store.env,
           "GCE_POLL_SECONDS": str(POLL_SECONDS), "START_WAIT_SECONDS": str(WAIT_SECONDS),
           "BOT_CHANNEL_URL": "ws://127.0.0.1:9/bots/channel", "BOT_CHANNEL_TOKEN": "d" * 40,
           "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "TURN_SHARED_SECRET": "t" * 32,
           "RESERVE_MAX_IDLE": "0", "RESERVE_MIN_IDLE": "0", "REAPER_INTERVAL_SECONDS": "3600",
           "LOG_LEVEL": "warning"}


Waiters = Callable[[str, str], Awaitable[list[httpx.Response]]]


def waited_on(base: str, fake_gce: FakeGce, waiters: Waiters) -> tuple[list[httpx.Response], float, int]:
    """A session that stays starting, and `waiters` on it: their answers, how long they took,
    and how many times the dispatcher read its instance meanwhile."""
    started = httpx.post(f"{base}/start", json={}, headers=AUTH, timeout=60)
    assert started.status_code == 201 and started.json()["status"] == "starting", started.text
    session_id = started.json()["session_id"]

    def reads() -> int:
        return sum(1 for c in list(fake_gce.calls) if c.method == "GET" and c.path.endswith(session_id))

    before, began = reads(), time.monotonic()
    answers = asyncio.run(waiters(base, session_id))
    return answers, time.monotonic() - began, reads() - before


def test_offers_on_a_starting_session_share_one_provider_poll(
    tmp_path: Path, store: RedisServer, fake_gce: FakeGce
) -> None:
    with run_dispatcher(tmp_path, gce_env(store, fake_gce)) as dispatcher:
        answers, took, made = waited_on(dispatcher.base_url, fake_gce, offers)

    assert [a.status_code for a in answers] == [504] * OFFERS, [a.text for a in answers]
    assert all(a.json()["error"]["code"] == "start_timeout" for a in answers)
    # One wait: about WAIT_SECONDS / POLL_SECONDS polls, plus each offer's own first look (the
    # session must exist). A wait per offer read OFFERS times as often (~240 here).
    polls = took / POLL_SECONDS
    assert made <= polls + OFFERS + 5, f"{made} instance reads in {took:.1f} s for {OFFERS} offers"


LONG_POLL_SECONDS = 3.0


async def long_polls(base: str, session_id: str) -> list[httpx.Response]:
    async with api_client(base_url=base, headers=AUTH, timeout=60) as http:
        return list(await asyncio.gather(*(
            http.get(f"/sessions/{session_id}", params={"wait": "started", "timeout": LONG_POLL_SECONDS})
            for _ in range(OFFERS))))


def test_long_polls_on_a_starting_session_share_one_provider_poll(
    tmp_path: Path, store: RedisServer, fake_gce: FakeGce
) -> None:
    """`GET /sessions/{id}?wait=started` (and event streams, through the same call) join the one
    wait for the session, each bounded by its own timeout, rather than polling it each."""
    with run_dispatcher(tmp_path, gce_env(store, fake_gce)) as dispatcher:
        answers, took, made = waited_on(dispatcher.base_url, fake_gce, long_polls)

    assert [a.status_code for a in answers] == [200] * OFFERS, [a.text for a in answers]
    assert all(a.json()["status"] == "starting" for a in answers)
    assert took >= LONG_POLL_SECONDS * 0.9  # each waited its own timeout
    # One wait: a poll every POLL_SECONDS, plus each long-poll's own two looks (before and after).
    # A wait per long-poll read OFFERS times as often (~180 here).
    polls = took / POLL_SECONDS
    assert made <= polls + 2 * OFFERS + 5, f"{made} instance reads in {took:.1f} s for {OFFERS} long-polls"
