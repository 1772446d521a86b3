"""A change of the releases' traffic made at one replica is what every replica serves: two real
`python -m dispatcher` processes on one redis-server, signed in as the AWS stack's store user, and a
replica restarted comes back with the stored traffic, not its configured first weights."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.replicas.conftest import replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.releases import admin, release_env, until, weights


def test_a_change_at_one_replica_is_served_by_the_other_and_survives_a_restart(tmp_path: Path,
                                                                               store: RedisServer) -> None:
    releases = release_env(tmp_path)  # stable=90, next=10 as configured

    def replica(name: str, stack: ExitStack):  # noqa: ANN202 - a running DispatcherProcess
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        env = {**replica_env(store, str(tmp_path), name), **releases}
        return stack.enter_context(run_dispatcher(folder, env, log_name=f"{name}-{len(list(folder.iterdir()))}.log"))

    with ExitStack() as fleet:
        a, b = replica("r-a", fleet), replica("r-b", fleet)
        assert weights(b.base_url) == {"stable": 90, "next": 10}

        changed = admin("PUT", a.base_url, "/releases/next", json={"weight": 0})
        assert changed.status_code == 200, changed.text
        until(lambda: weights(b.base_url) == {"stable": 100, "next": 0})

        assert admin("PUT", b.base_url, "/releases/next", json={"weight": 40}).status_code == 200
        until(lambda: weights(a.base_url) == {"stable": 60, "next": 40})
        rolled = admin("POST", a.base_url, "/releases/rollback")
        assert rolled.status_code == 200, rolled.text
        until(lambda: weights(b.base_url) == {"stable": 100, "next": 0})
        history = admin("GET", b.base_url, "/releases/history").json()["changes"]
        assert [c["to"]["next"] for c in history[:3]] == [0, 40, 0]  # newest first, from both replicas

        assert admin("PUT", a.base_url, "/releases/next", json={"weight": 25}).status_code == 200
        until(lambda: weights(b.base_url) == {"stable": 75, "next": 25})
    assert store.refused() == []  # nothing the stack's user may not do

    with ExitStack() as fleet:  # every replica restarted: the store's traffic, from the first answer on
        again = replica("r-b", fleet)
        assert weights(again.base_url) == {"stable": 75, "next": 25}
