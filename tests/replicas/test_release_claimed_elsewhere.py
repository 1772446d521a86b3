"""A start at one replica that claims an idle bot another replica holds is the session of the release
the start chose, the release the bot was launched from: in the start's answer, in the session's status
at both replicas, and in what each replica counts running by release (`GET /status`, `GET /releases`)."""

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
        # Counted under its release where its bot runs (local bots: each replica counts its own
        # processes, and says so), and nowhere under a release the deployment does not list.
        for replica, running in ((holder, 1), (starter, 0)):
            # `status` is a sample a few seconds old at most: the claim shows in the next one.
            wait_until(lambda r=replica, n=running: admin("GET", r, "/status").json()["sessions"]["running"] == n,
                       "the claimed bot counted where it runs", timeout=20, detail=fleet.logs)
            status = admin("GET", replica, "/status").json()
            assert status["sessions"]["by_release"] == ({"stable": running} if running else {}), status
            assert status["scope"]["sessions"] == "replica", status["scope"]
            live = {name: r["live_sessions"] for name, r in listed_releases(replica).items()}
            assert live == {"stable": running, "next": 0}, live
