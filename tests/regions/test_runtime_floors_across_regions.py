"""A revoked key compacted out of the runtime record stays revoked across regions, real processes on
loopback, each region on a redis-server of its own (one revoked secret kept, `REVOKED_KEYS_KEPT=1`):
a region that was down holding the secret live comes back and merges, and a replica starts on a
store restored from a copy taken before the revocation; each time the secret is refused at every
replica once the regions have exchanged their records, and no region takes it back. Its holder is
told `api_key_revoked` where a replica remembers checking it, `unauthorized` elsewhere. Nothing is
timed: each wait polls with a generous deadline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.regions.stored_regions import Region, start_replica, stored_regions
from tests.regions.support import reachable
from tests.regions.test_runtime_across_regions import DEADLINE, admin, logs
from tests.support.waiting import wait_until

RECORD = "{voicefleet}:runtime:settings"


def refused_as(url: str, key: str) -> str | None:
    """The error code `GET /sessions` answers `key` with (None: it was served)."""
    answer = httpx.get(f"{url}/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=DEADLINE)
    return None if answer.status_code == 200 else str(answer.json()["error"]["code"])


def entries(region: Region) -> dict[str, Any]:
    raw = region.store.admin().hget(RECORD, "record")
    return dict(json.loads(str(raw))["entries"]) if raw else {}


def made(url: str, another: bool = True) -> dict[str, Any]:
    answer = admin("POST", url, "/keys", json={"name": "acme", "another": another})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def revoked(url: str, secret_id: str) -> None:
    assert admin("DELETE", url, f"/keys?secret_id={secret_id}").status_code == 204


def agreed(regions: dict[str, Region], secret_id: str) -> bool:
    """Both stores hold the same entries, the compacted secret in neither."""
    eu, us = entries(regions["eu"]), entries(regions["us"])
    return eu == us and secret_id not in eu.get("secrets", {}) and "acme" in eu.get("floors", {})


def test_a_compacted_revocation_stays_revoked_when_a_stale_region_or_an_old_store_copy_comes_back(
        tmp_path: Path) -> None:
    with stored_regions(tmp_path, ("eu", "us"), extra={"REVOKED_KEYS_KEPT": "1"}) as (regions, stack):
        eu, us = regions["eu"].url, regions["us"].url
        wait_until(lambda: reachable(regions["eu"].replicas[0], "us") and reachable(regions["us"].replicas[0], "eu"),
                   "the regions reach each other", timeout=DEADLINE)
        first = made(eu, another=False)
        wait_until(lambda: refused_as(us, first["secret"]) is None, "eu's key served in us", timeout=DEADLINE,
                   interval=0.1, detail=lambda: logs(regions))
        old_copy = regions["us"].store.admin().hgetall(RECORD)  # us's store as a backup kept it, the key live

        # us is down while eu rotates acme twice: the first secret's revoked entry is compacted.
        regions["us"].replicas[0].process.kill()
        regions["us"].replicas[0].process.wait()
        second = made(eu)
        revoked(eu, first["secret_id"])
        assert refused_as(eu, first["secret"]) == "api_key_revoked"  # checked against its kept hash
        third = made(eu)
        revoked(eu, second["secret_id"])
        compacted = entries(regions["eu"])
        assert first["secret_id"] not in compacted["secrets"] and "acme" in compacted["floors"]
        assert refused_as(eu, first["secret"]) == "api_key_revoked"  # eu remembers having checked it

        # us comes back holding the first secret live: the regions merge, and it stays revoked.
        start_replica(stack, regions["us"], 0, port=int(us.rsplit(":", 1)[1]), again="-again")
        wait_until(lambda: agreed(regions, first["secret_id"]), "us takes eu's compacted record", timeout=DEADLINE,
                   interval=0.1, detail=lambda: logs(regions))
        assert refused_as(us, first["secret"]) == "unauthorized"  # no replica there checked it: unknown
        trail = admin("GET", us, "/audit/runtime").json()["lines"]
        assert any(line["action"] == "key.revoke" and line["secret_id"] == first["secret_id"]
                   and line["by"] == "region eu: revoked before its entry was compacted" for line in trail), trail
        assert refused_as(eu, first["secret"]) == "api_key_revoked"
        assert refused_as(us, third["secret"]) is None and refused_as(eu, third["secret"]) is None

        # us's store is restored from the old copy, and another replica starts on it.
        regions["us"].store.admin().hset(RECORD, mapping=old_copy)
        start_replica(stack, regions["us"], 1)
        wait_until(lambda: agreed(regions, first["secret_id"]), "us's restored store takes the floor again",
                   timeout=DEADLINE, interval=0.1, detail=lambda: logs(regions))
        for replica in (*regions["us"].replicas, *regions["eu"].replicas):
            wait_until(lambda r=replica: refused_as(r.base_url, first["secret"]) is not None,  # type: ignore[misc]
                       f"{replica.base_url} refuses the compacted secret", timeout=DEADLINE, interval=0.1)
            assert refused_as(replica.base_url, third["secret"]) is None
        assert agreed(regions, first["secret_id"])  # and eu did not take it back from us's old copy
