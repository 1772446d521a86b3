"""A release's suite verdict is the deployment's, not one replica's: two real `python -m dispatcher`
processes on one redis-server, signed in as the AWS stack's store user, with `RELEASE_EVAL_REQUIRED=on`.
The eval's sessions start at one replica; the other checks them in the shared session index and
records the verdict; both show it, and only then does the first take a weight for the release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.replicas.conftest import API_KEY, start_fleet
from tests.support.redis_server import RedisServer
from tests.support.releases import ADMIN_KEY, admin, release_env, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SUITE = "7c" * 32


def eval_of(base_url: str, name: str = "next") -> dict[str, Any] | None:
    listed = admin("GET", base_url, "/releases").json()["releases"]
    found: dict[str, Any] | None = next(r for r in listed if r["name"] == name)["eval"]
    return found


def test_a_verdict_recorded_at_one_replica_of_sessions_started_at_another_is_every_replicas(
        tmp_path: Path, store: RedisServer) -> None:
    bots = tmp_path / "bots"
    bots.mkdir()
    env = {**release_env(bots, weights="stable=100"), "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RELEASE_EVAL_REQUIRED": "on"}
    with start_fleet(tmp_path, store, 2, **env) as fleet:
        a, b = fleet.replicas
        calls = []
        for n in range(2):
            started = httpx.post(f"{a.base_url}/start", json={"release": "next", "eval": True},
                                 headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": f"eval-{n}"},
                                 timeout=30)
            assert started.status_code == 201, started.text
            calls.append(started.json()["session_id"])
        refused = admin("PUT", a.base_url, "/releases/next", json={"weight": 10})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "release_not_smoke_tested"

        recorded = admin("POST", b.base_url, "/releases/next/smoke", json={"suite": SUITE, "sessions": calls})
        assert recorded.status_code == 200, recorded.text
        until(lambda: eval_of(a.base_url) is not None)
        assert eval_of(a.base_url) == eval_of(b.base_url)
        assert (eval_of(a.base_url) or {}).get("passed") == 2
        given = admin("PUT", a.base_url, "/releases/next", json={"weight": 10})
        assert given.status_code == 200, given.text
    assert store.refused() == []  # nothing the stack's user may not do
