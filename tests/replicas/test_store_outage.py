"""The store stopped and started again mid-run: /healthz says so at every replica, no keyed start
launches twice meanwhile, and once it is back the replicas write their records again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.replicas.conftest import get, post, start_fleet
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # three real dispatchers, a redis-server and their bots: about a minute

def health(url: str) -> dict[str, object]:
    answer = get(url, "/healthz")
    assert answer.status_code == 200  # degraded is still alive: a balancer must keep the replica
    body: dict[str, object] = answer.json()
    return body


def test_a_store_outage_is_reported_refuses_no_safe_start_and_never_launches_twice(
    tmp_path: Path, store: RedisServer
) -> None:
    # The heartbeat (every third of a lease) is what notices the outage and its end, and writes the
    # owner records again: the production default's, every 5 s, rather than every 20 s.
    with start_fleet(tmp_path, store, 2, RESERVE_MAX_IDLE="0", REDIS_LEASE_SECONDS="15") as fleet:
        a, b = (r.base_url for r in fleet.replicas)
        before = post(a, "/start?wait=started", json={}, headers={"Idempotency-Key": "before"})
        assert before.status_code == 201
        session_before = before.json()["session_id"]
        assert all(health(url)["status"] == "ok" for url in (a, b))

        store.stop()
        wait_until(lambda: all(health(url)["status"] == "degraded" for url in (a, b)), "both to see the outage")
        store_health = health(a)["store"]
        assert isinstance(store_health, dict) and store_health["status"] == "unreachable"
        # A keyed local start needs the store (local bots cannot be launched idempotently).
        with ThreadPoolExecutor(2) as pool:
            keyed = list(pool.map(lambda url: post(url, "/start", json={}, headers={"Idempotency-Key": "during"}),
                                  (a, b)))
        assert [k.status_code for k in keyed] == [503, 503], [k.text for k in keyed]
        assert all(k.json()["error"]["code"] == "store_unavailable" and k.headers["Retry-After"] for k in keyed)
        # A start without a key cannot collide with anything: it still works.
        assert post(b, "/start?wait=started", json={}).status_code == 201
        # The owner still answers for its own session.
        assert get(a, f"/sessions/{session_before}").json()["status"] == "started"

        store.start()  # same port, empty: nothing was persisted
        wait_until(lambda: all(health(url)["status"] == "ok" for url in (a, b)), "both to see the store back")
        # The heartbeat writes the owner records again: the other replica finds the session.
        wait_until(lambda: get(b, f"/sessions/{session_before}").status_code == 200,
                   "the owner record to be written again")
        with ThreadPoolExecutor(2) as pool:
            after = list(pool.map(lambda url: post(url, "/start", json={}, headers={"Idempotency-Key": "during"}),
                                  (a, b)))
        assert sorted(k.status_code for k in after) == [200, 201], [k.text for k in after]
        per_session = fleet.sessions_of_bots()
        assert per_session[after[0].json()["session_id"]] == 1 and per_session[session_before] == 1
        assert len(fleet.bots()) == 3  # before, the unkeyed one, and the key retried after the outage
