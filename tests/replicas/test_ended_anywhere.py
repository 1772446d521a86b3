"""A session that ended at one replica is answered at every replica: its details, failure, release,
timeline and cost, for the key that started it (or another secret of its name) and for an admin,
though only the replica that ran its bot still knows its process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.replicas.conftest import API_KEY, TIMEOUT, start_fleet
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

ADMIN_KEY = "ended-anywhere-admin-key-0123456789"
TOKEN = "ended-anywhere-deployment-secret-0123456789"  # binds a runtime key's sessions to its name everywhere
# What both replicas answer alike (its start's time is the admission's there, the launch's here: a
# millisecond or so apart).
SHOWN = ("session_id", "status", "release", "detail", "trace_id", "error", "cost")


def call(method: str, base_url: str, path: str, key: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, base_url + path, timeout=TIMEOUT,  # type: ignore[arg-type]
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


def listed_ended(base_url: str, key: str, session_id: str) -> bool:
    listed = call("GET", base_url, "/sessions", key).json()["sessions"]
    return any(s["session_id"] == session_id and s["status"] == "ended" for s in listed)


def shown(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return {field: answer.json().get(field) for field in SHOWN}


def test_a_session_ended_at_one_replica_is_answered_at_the_other(tmp_path: Path, store: RedisServer) -> None:
    with start_fleet(tmp_path, store, 2, RESERVE_MAX_IDLE="0", DISPATCHER_ADMIN_KEYS=ADMIN_KEY,
                     BOT_CHANNEL_TOKEN=TOKEN) as fleet:
        a, b = (r.base_url for r in fleet.replicas)
        created = call("POST", a, "/keys", ADMIN_KEY, json={"name": "acme"})
        assert created.status_code == 201, created.text
        rotated = call("POST", b, "/keys", ADMIN_KEY, json={"name": "acme", "another": True})
        assert rotated.status_code == 201, rotated.text
        old, new = created.json()["secret"], rotated.json()["secret"]

        # A named key's session, and a runtime key's started with its first secret, read with the second.
        for starter, reader in ((API_KEY, API_KEY), (old, new)):
            started = call("POST", a, "/start?wait=started", starter, json={"body": {}})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            assert call("DELETE", a, f"/sessions/{session_id}", starter).status_code in (202, 204)
            # Once B lists it as ended (the deployment's record of it reached the store) ...
            wait_until(lambda: listed_ended(b, reader, session_id), "the session listed as ended at B",  # noqa: B023
                       timeout=30, detail=fleet.logs)
            here = shown(call("GET", a, f"/sessions/{session_id}", reader))
            assert here["status"] == "ended" and here["release"] == "default", here
            # ... B answers for it as A does: to its key, to an admin, and with its timeline.
            for key in (reader, ADMIN_KEY):
                there = call("GET", b, f"/sessions/{session_id}", key)
                assert shown(there) == here, fleet.logs()
                assert abs(there.json()["created_at"] - started.json()["created_at"]) < 1
                timeline = call("GET", b, f"/sessions/{session_id}/timeline", key)
                assert timeline.status_code == 200, timeline.text
                assert {"requested", "stop_requested"} <= {e["event"] for e in timeline.json()["events"]}
            # Another client key still sees nothing of it.
            other = API_KEY if reader == new else new
            assert call("GET", b, f"/sessions/{session_id}", other).status_code == 404
