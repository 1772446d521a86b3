"""A provider's create limit is the deployment's, not each replica's: three real dispatchers on a
real redis-server, with a warm reserve the planner refills, and a burst of cold starts spread over
every replica, never send the fake Fly API (which enforces the limit per app, as Fly does) one
create more than the limit allows. Each replica counting the limit for itself sent three times
the burst, and Fly refused the rest. Compute Engine's inserts and ECS's RunTask calls are counted
the same way, by one code: two replicas' providers on a real redis-server sharing one count, a
refill leaving the last token to a cold launch, in tests/dispatcher/machines/test_cloud_creates.py;
a start refused for it answers as a start refused for Fly's limit does (here), its reason
`gce_rate_limited` in tests/dispatcher/machines/test_gce_cells.py.

The limit is made slow here (one create every 100 s, burst 3) so that what the test checks does
not depend on timing: within the test the deployment may create exactly the burst, whatever the
machine's load.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.fakes.server import serve
from tests.replicas.test_redial import AUTH, DEADLINE, env, until
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # three dispatchers and a redis-server per test

BURST = 3
# One key sends every start here: neither its start rate, the session cap nor its TURN credentials
# are what is tested. A WebRTC start holds one of the key's TURN_CREDENTIALS_PER_KEY (20 by default)
# while it is under way, and a started session keeps it: with 9 sessions started and 12 starts in
# flight the key would hold 21, and the last would be refused 429 `turn_credentials_exhausted`.
KEY_RATE = {"START_RATE_PER_KEY": "1000", "START_BURST_PER_KEY": "1000", "MAX_CONCURRENT_SESSIONS": "500",
            "TURN_CREDENTIALS_PER_KEY": "1000"}
PER_SECOND = 0.01  # the next token 100 s after the burst: later than the test lasts


def lists_not_tested(fly: FakeFly) -> None:
    """The replicas here reap every 0.5 s (test_redial's `env`), and one of them finds every other's
    sessions by listing every app: more than Fly's 1 list/s per app, which is not what is tested
    here (tests/dispatcher/machines/test_fly_lists.py tests it)."""
    fly.list_per_second, fly.list_burst = 1000, 1000


def idle_machines(fly: FakeFly) -> list[dict[str, Any]]:
    return [m for m in list(fly.machines.values()) if m["name"].startswith("vf-idle-")]


def test_every_replicas_launches_together_stay_within_the_apps_create_limit(
    tmp_path: Path, store: RedisServer, fake_fly: FakeFly
) -> None:
    fake_fly.create_per_second, fake_fly.create_burst = PER_SECOND, BURST
    lists_not_tested(fake_fly)
    limit = {"FLY_CREATE_RATE": str(PER_SECOND), "FLY_CREATE_BURST": str(BURST), "FLY_CREATE_MAX_WAIT": "0",
             # two reserve bots (their machines never boot here: they stay warming) and no frozen tier
             "RESERVE_MIN_IDLE": "2", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "FLY_FROZEN_FORM": "off",
             "REDIS_LEASE_SECONDS": "60", **KEY_RATE}
    with ExitStack() as stack:
        replicas = []
        for n in range(3):
            (tmp_path / f"r-{n}").mkdir()
            replica_env = env(fake_fly, store, f"r-{n}", "ws://127.0.0.1:9/bots/channel", **limit)
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r-{n}", replica_env)))

        def logs() -> str:
            return "\n".join(r.log()[-3000:] for r in replicas)

        until("the planner refilled the reserve", lambda: len(idle_machines(fake_fly)) == 2, logs)
        targets = [replicas[n % 3].base_url for n in range(12)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(
                lambda url: httpx.post(f"{url}/start", json={}, headers=AUTH, timeout=DEADLINE), targets))

    statuses = sorted(a.status_code for a in answers)
    assert fake_fly.refused_creates == 0, f"Fly refused {fake_fly.refused_creates} creates; starts: {statuses}"
    assert len(fake_fly.create_times) == BURST, statuses  # two refills, and the one token they left a cold start
    assert statuses.count(201) == 1, [a.text for a in answers]
    refused = [a for a in answers if a.status_code != 201]
    assert {a.status_code for a in refused} == {503}, [a.text for a in refused]
    assert all("Retry-After" in a.headers for a in refused)


def test_creates_spread_over_the_deployments_apps_each_within_its_own_limit(
    tmp_path: Path, store: RedisServer
) -> None:
    fly = FakeFly(other_apps=("voicefleet-bots-2", "voicefleet-bots-3"))
    fly.create_per_second, fly.create_burst = PER_SECOND, BURST
    lists_not_tested(fly)
    limit = {"FLY_CREATE_RATE": str(PER_SECOND), "FLY_CREATE_BURST": str(BURST), "FLY_CREATE_MAX_WAIT": "0",
             # cold starts only: each session's machine in its app
             "RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0", **KEY_RATE}
    with serve(fly), ExitStack() as stack:
        replicas = []
        for n in range(3):
            (tmp_path / f"r-{n}").mkdir()
            replica_env = env(fly, store, f"r-{n}", "ws://127.0.0.1:9/bots/channel", **limit)
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r-{n}", replica_env)))
        targets = [replicas[n % 3].base_url for n in range(24)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(
                lambda url: httpx.post(f"{url}/start", json={}, headers=AUTH, timeout=DEADLINE), targets))
        started = [a.json()["session_id"] for a in answers if a.status_code == 201]
        for session_id in started:  # every replica finds each session's machine, whichever app holds it
            found = httpx.get(f"{replicas[0].base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
            assert found.status_code == 200, found.text

    by_app = Counter(m["_app"] for m in fly.machines.values())
    assert fly.refused_creates == 0, f"Fly refused {fly.refused_creates} creates"
    assert set(by_app) == set(fly.apps) and max(by_app.values()) <= BURST, by_app
    assert len(started) == sum(by_app.values()) > BURST, (by_app, [a.text for a in answers])  # more than one app's
    refused = [(a.status_code, a.json()["error"]["code"]) for a in answers if a.status_code != 201]
    assert {status for status, _ in refused} == {503}, refused
