"""What a keyed start leaves at its Idempotency-Key's home region: a record of the day only for a
start that made its session. A refused start (past the caller's patience, at a cap) used to leave
one too, so a key could fill the home's store at its start rate with starts that never ran; now
its record is provisional and runs out in minutes. Real regional dispatchers, the home region's
store a redis-server signed in as the stack's user."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.api.auth import caller_of
from dispatcher.regions.config import Regions
from dispatcher.regions.home import HOLD_SECONDS, PROVISIONAL_SECONDS, home_region, key_digest
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY
from tests.regions.support import SECRET, regions, until
from tests.regions.test_spill_over import AUTH, peer_view
from tests.support.redis_server import redis_server

COLD = {"RESERVE_COLD_START_SECONDS": "20"}  # no warm bot anywhere: a start with maxWaitSeconds 0 is refused


def test_a_refused_keyed_start_leaves_a_provisional_record_and_a_started_one_a_days(tmp_path: Path) -> None:
    with redis_server(tmp_path) as store, \
            regions(tmp_path, ("eu", "us"), {"eu": COLD, "us": {**COLD, **store.env}}) as (urls, running):
        until(lambda: bool(peer_view(running["eu"], "us").get("reachable")), 20)
        caller = caller_of(hash_api_key(API_KEY)).id
        at_eu = Regions("eu", MappingProxyType(urls), SECRET.encode())
        homed_at_us = [k for k in (f"order-{n}" for n in range(200)) if home_region(at_eu, caller, k) == "us"][:2]
        admin = store.admin()

        def seconds_left(key: str) -> int:
            return int(admin.ttl("{voicefleet}:home:" + key_digest(caller, key)))

        refused = httpx.post(f"{urls['eu']}/start", json={"body": {}, "maxWaitSeconds": 0},
                             headers={**AUTH, "Idempotency-Key": homed_at_us[0]}, timeout=30)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "cold_start_too_slow", refused.text
        assert 0 < seconds_left(homed_at_us[0]) <= PROVISIONAL_SECONDS
        started = httpx.post(f"{urls['eu']}/start", json={"body": {}},
                             headers={**AUTH, "Idempotency-Key": homed_at_us[1]}, timeout=30)
        assert started.status_code == 201 and started.json()["region"] == "eu", started.text
        until(lambda: seconds_left(homed_at_us[1]) > HOLD_SECONDS - 60, 10)  # kept: a replay anywhere finds it
        replay = httpx.post(f"{urls['us']}/start", json={"body": {}},
                            headers={**AUTH, "Idempotency-Key": homed_at_us[1]}, timeout=30)
        assert replay.status_code == 200 and replay.json()["session_id"] == started.json()["session_id"], replay.text
