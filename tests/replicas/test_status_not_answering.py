"""`voicefleet status` names a replica that stopped answering, where it silently left it out: two real
replicas on one redis-server, one SIGKILLed (no drain); once its heartbeat's lease runs out the other's
`GET /status` lists it under `replicas_not_answering`, with when it was last seen, and the command
shows it. A replica that drains first is not named: it left."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.replicas.conftest import TIMEOUT, start_fleet
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until
from voicefleet.main import voicefleet

pytestmark = pytest.mark.slow  # two real dispatchers and a redis-server

ADMIN_KEY = "vf-status-missing-admin-7d2c9e1b40"
LEASE = "2"  # seconds: the killed replica's heartbeat lease runs out soon


def status(base_url: str) -> dict:
    answer = httpx.get(f"{base_url}/status", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_replica_that_stops_answering_is_named_by_status(tmp_path: Path, store: RedisServer) -> None:
    with start_fleet(tmp_path, store, 2, DISPATCHER_ADMIN_KEYS=ADMIN_KEY, REDIS_LEASE_SECONDS=LEASE) as fleet:
        here, gone = fleet.replicas
        gone_id = "r-1"  # start_fleet names its replicas r-0, r-1 (tests/replicas/conftest.py)
        assert status(here.base_url)["replicas_not_answering"] == []
        gone.process.kill()  # no drain, no leave: it just stops answering
        gone.process.wait(timeout=10)
        missing = wait_until(lambda: status(here.base_url)["replicas_not_answering"], "the killed replica named",
                             timeout=30, interval=0.5, detail=here.log)
        assert [m["id"] for m in missing] == [gone_id] and missing[0]["last_seen"] > 0
        shown = CliRunner().invoke(voicefleet, ["status"], prog_name="voicefleet",
                                   env={"VOICEFLEET_URL": here.base_url, "VOICEFLEET_ADMIN_KEY": ADMIN_KEY})
        assert shown.exit_code == 0, shown.output
        assert f"{gone_id}" in shown.output and "not answering since" in shown.output
