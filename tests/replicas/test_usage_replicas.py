"""Two replicas on one redis-server keep one usage total: sessions started and ended at either one
are each counted once, and either replica answers `GET /usage` with the same sums.

The tests share one fleet: the sessions are the first test's alone (the second starts none), and the
second's client-key reads of `GET /usage` are charged to a bucket the first's admin reads never touch."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.replicas.conftest import AUTH, TIMEOUT, Fleet, delete, post, start_fleet
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until

ADMIN_KEY = "usage-replicas-admin-key-0123456789"
SESSIONS = 4


def usage(base_url: str, query: str = "") -> dict:
    answer = httpx.get(f"{base_url}/usage{query}", timeout=TIMEOUT, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("usage-replicas")
    with redis_server(root) as store, \
            start_fleet(root, store, 2, RESERVE_MAX_IDLE="0", DISPATCHER_ADMIN_KEYS=ADMIN_KEY) as running:
        yield running


def test_two_replicas_count_each_session_once_in_one_total(fleet: Fleet) -> None:
    for _ in range(SESSIONS):
        started = post(fleet.any(), "/start?wait=started", json={})
        assert started.status_code == 201, started.text
        stopped = delete(fleet.any(), f"/sessions/{started.json()['session_id']}")
        assert stopped.status_code in (202, 204), stopped.text
    a, b = (r.base_url for r in fleet.replicas)
    wait_until(lambda: usage(a)["totals"]["sessions"] == SESSIONS, "every session in the usage", timeout=60,
               detail=fleet.logs)
    here, there = usage(a, "?by=day"), usage(b, "?by=day")
    assert here["rows"] == there["rows"] and here["totals"]["sessions"] == SESSIONS
    [row] = usage(b)["rows"]  # one key: the fleet's client key, by its id (it has no name)
    assert row["sessions"] == SESSIONS and row["minutes"] > 0
    assert len(fleet.store.admin().keys("{voicefleet}:usage:counted:*")) == SESSIONS  # each session once
    for replica in (a, b):  # each one's cost beside its listed entry, at either replica
        listed = httpx.get(f"{replica}/sessions", timeout=TIMEOUT,
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["sessions"]
        assert [item["cost_usd"] for item in listed] == [0.0] * SESSIONS, listed


def test_a_client_keys_days_of_usage_are_one_budget_across_replicas(fleet: Fleet) -> None:
    # GET /usage charges a client key by the days it reads (800, then 400 a minute). Counted in each
    # replica's memory, a key alternating between two read twice what docs/http-api.md says.
    a, b = (r.base_url for r in fleet.replicas)
    codes = []
    for base, days in ((a, 400), (b, 399), (a, 398), (b, 397)):  # each new (no answer kept), ~800 days at once
        answer = httpx.get(f"{base}/usage?since={days}d", timeout=TIMEOUT, headers=AUTH)
        codes.append(answer.status_code if answer.status_code == 200 else answer.json()["error"]["code"])
    # The third needs a minute's days given back first, whichever replica it asks.
    assert codes == [200, 200, "usage_days_exhausted", "usage_days_exhausted"], codes
    assert fleet.store.admin().keys("{voicefleet}:usage-days:*"), "the bucket is the store's"
    assert usage(b, "?since=400d")["since"]  # an admin's read is not charged
