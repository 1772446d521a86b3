"""A start at one replica that claims an idle bot another replica holds is the session of the release
the start chose, the release the bot was launched from: in the start's answer, in the session's status
at both replicas, and in what every replica counts running by release (`GET /status`, `GET /releases`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.replicas.conftest import WARM_ONE, get, start_fleet, warm_start_elsewhere
from tests.support.redis_server import RedisServer
from tests.support.releases import admin, listed_releases, release_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two real dispatchers, a redis-server and a reserve bot: about 20 s



def test_a_bot_claimed_at_another_replica_serves_the_release_it_was_launched_from(
        tmp_path: Path, store: RedisServer) -> None:
    bots = tmp_path / "bots"
    bots.mkdir()
    releases = release_env(bots, "stable=100,next=0")  # `next` keeps no idle bots: the one is `stable`'s
    # `stable` runs the deployment's own BOT_FILE, whose bots a claim that lost the session's release
    # took as the `default` release's.
    with start_fleet(tmp_path, store, 2, **releases, **WARM_ONE, BOT_FILE=str(bots / "bot.py")) as fleet:
        starter, holder, started = warm_start_elsewhere(fleet)
        session_id = started.json()["session_id"]
        assert started.json()["release"] == "stable", started.text
        for replica in (starter, holder):
            assert get(replica, f"/sessions/{session_id}").json()["release"] == "stable"
        # Counted under its release at every replica (local bots are each replica's own processes: each
        # publishes its own, and every replica counts them all), and nowhere under a release the
        # deployment does not list.
        for replica in (holder, starter):
            # `status` is a sample a few seconds old at most: the claim shows in the next one.
            wait_until(lambda r=replica: admin("GET", r, "/status").json()["sessions"]["running"] == 1,
                       "the claimed bot counted at every replica", timeout=20, detail=fleet.logs)
            status = admin("GET", replica, "/status").json()
            assert status["sessions"]["by_release"] == {"stable": 1}, status
            assert status["scope"]["sessions"] == "region", status["scope"]
            live = {name: r["live_sessions"] for name, r in listed_releases(replica).items()}
            assert live == {"stable": 1, "next": 0}, live
