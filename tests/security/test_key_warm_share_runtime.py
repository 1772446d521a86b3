"""A key's warm share follows the reserve's ceiling as it applies at runtime (`capacity set
reserve.max=4`), not only RESERVE_MAX_IDLE at start-up; a start that goes cold because its key spent
its warm share says so on its timeline (`requested`: `cold_because: key_warm_share`). One real
`python -m dispatcher` on a redis-server, its reserve of local stand-in bots."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.replicas.conftest import start_fleet
from tests.security.test_key_shares import KEY_A, KEY_B, A, idle_bots, launch_of, start, store  # noqa: F401
from tests.support.redis_server import RedisServer
from tests.support.session_api import METRICS_KEY

pytestmark = pytest.mark.slow  # a dispatcher, its reserve's bots and a redis-server

ADMIN_KEY = "vf-warm-share-admin-5c0e2b9d71"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def requested(base: str, session_id: str) -> dict:
    events = httpx.get(f"{base}/sessions/{session_id}/timeline", headers=A, timeout=30).json()["events"]
    return next(e for e in events if e["event"] == "requested")


def test_a_keys_warm_share_follows_the_reserve_raised_at_runtime(tmp_path: Path, store: RedisServer) -> None:  # noqa: F811
    with start_fleet(tmp_path, store, 1, DISPATCHER_API_KEYS=f"{KEY_A},{KEY_B}",
                     DISPATCHER_ADMIN_KEYS=f"{ADMIN_KEY},{METRICS_KEY}", MAX_CONCURRENT_SESSIONS="10",
                     RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="2", RESERVE_BUFFER="0",
                     RESERVE_BURST="0") as fleet:
        base = fleet.replicas[0].base_url
        # KEY_WARM_SHARE 0.5 of 2: one warm claim a minute; of 4: two.
        raised = httpx.patch(f"{base}/capacity", json={"reserve.max": 4, "reserve.min": 4}, headers=ADMIN, timeout=30)
        assert raised.status_code == 200, raised.text
        assert raised.json()["key_warm_share"] == 2  # what `voicefleet capacity` shows under its table
        deadline = time.monotonic() + 120
        while idle_bots(base) < 4:
            assert time.monotonic() < deadline, "the reserve never held 4 idle bots"
            time.sleep(0.2)
        answers = [start(base, A) for _ in range(3)]
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        ids = [a.json()["session_id"] for a in answers]
        launches = [launch_of(base, A, session_id) for session_id in ids]
        why = [requested(base, session_id).get("cold_because") for session_id in ids]
        status = httpx.get(f"{base}/status", headers=ADMIN, timeout=30)
        assert status.status_code == 200, status.text
        assert status.json()["starts"]["1m"]["cold"] == {"key_warm_share": 1}  # `status` says it too
    assert launches == ["claimed", "claimed", "launched"], launches
    assert why == [None, None, "key_warm_share"], why
