"""A burst larger than the deployment's reserve, each start at a random replica: every session
gets its own bot, warm or cold, and no idle bot is claimed twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.replicas.conftest import Fleet, delete, greeted, post, start_fleet
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow  # three real dispatchers, a redis-server and their bots: about a minute

IDLE = 2  # the deployment's, however many replicas


def wait_idle(fleet: Fleet, store: RedisServer, count: int) -> None:
    """Until `count` bots are idle: spawned, and their hello recorded (only a greeted bot is claimed)."""
    deadline = time.monotonic() + 90
    while len(fleet.bots()) < count or greeted(store) < count:
        assert time.monotonic() < deadline, f"the reserve never held {count} idle bots"
        time.sleep(0.1)


def test_a_burst_past_the_reserves_gives_every_session_its_own_bot(tmp_path: Path, store: RedisServer) -> None:
    with start_fleet(tmp_path, store, 3, RESERVE_MIN_IDLE=str(IDLE), RESERVE_BUFFER="0",
                             RESERVE_BURST="0") as fleet:
        wait_idle(fleet, store, IDLE)
        targets = [fleet.any() for _ in range(15)]
        with ThreadPoolExecutor(15) as pool:
            answers = list(pool.map(lambda url: post(url, "/start?wait=started", json={}), targets))
        assert [a.status_code for a in answers] == [201] * 15, [a.text for a in answers]
        sessions = [a.json()["session_id"] for a in answers]
        bots = {}
        for session_id in sessions:
            offer = post(fleet.any(), f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
            assert offer.status_code == 200, offer.text
            bot_session, pid = offer.json()["bot"].split("/")
            assert bot_session == session_id
            bots[session_id] = pid
        assert len(set(bots.values())) == 15, "a bot serves two sessions"
        # The store's claim records: each claimed idle bot names one session, each session one bot.
        client = store.admin()
        claims = {key: client.get(key) for key in client.scan_iter(match="{voicefleet}:claim:*")}
        assert claims, "no start was warm"
        assert len(set(claims.values())) == len(claims) and set(claims.values()) <= set(sessions)
        for session_id in sessions:
            assert delete(fleet.any(), f"/sessions/{session_id}").status_code in (202, 204)
