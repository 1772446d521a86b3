"""A dispatcher that starts serves the stored traffic from its first request: the store (and, with
several regions, the peers) is read before the app serves, not by the loop a moment later."""

from __future__ import annotations

from pathlib import Path

from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.wiring import build_state, running
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.releases import release_env


async def test_the_stored_traffic_is_served_from_the_first_request_not_the_configured_one(tmp_path: Path) -> None:
    env = {**release_env(tmp_path, "stable=90,next=10"), "DISPATCHER_API_KEYS": "k" * 24, "RESERVE_MAX_IDLE": "0"}
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    state = build_state(env=env, machines=machines, rooms=None)
    stored = {"weights": {"stable": 30, "next": 70}, "stable": "stable", "version": [5, ""], "changed_by": "ops",
              "reason": "next set to 70%", "held": {}}
    assert await state.replication.coordination.releases.write(stored, None)  # as a replica before this one left it
    async with running(state):  # which closes the state on the way out
        assert dict(state.releases.traffic.weights) == {"stable": 30, "next": 70}  # no await since serving began
