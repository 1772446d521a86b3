"""A dispatcher's region is read once: the name its sessions and answers carry is the one its peers know."""

from __future__ import annotations

import logging

import pytest

from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from dispatcher.wiring import build_state

SECRET = "s" * 32
REGIONS = "eu=http://127.0.0.1:1,us=http://127.0.0.1:2"


def regional(name: str) -> dict[str, str]:
    return {"REGION": name, "REGIONS": REGIONS, "REGION_SECRET": SECRET, "DISPATCHER_API_KEYS": "k" * 20}


async def test_settings_made_for_another_region_cannot_disagree_with_the_peers() -> None:
    def machines() -> LocalMachines:
        return LocalMachines(LocalSettings(bot_command=("true",)))

    # Settings built from one environment, the dispatcher from another: the environment's REGION wins.
    state = build_state(Settings.from_env(regional("eu")), env=regional("us"), machines=machines(), rooms=None)
    try:
        assert state.settings.region == state.peers.regions.here == "us"
    finally:
        await state.aclose()
    one = build_state(Settings.from_env(regional("eu")), env={}, machines=machines(), rooms=None)
    try:
        assert one.settings.region == one.peers.regions.here == ""  # no REGIONS: one region, whatever was passed
    finally:
        await one.aclose()


async def test_a_dispatcher_still_taking_the_previous_secret_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """Forgetting the last step of a change of secret would keep the old one valid for good, silently."""
    env = {**regional("eu"), "REGION_ACCEPTED_SECRET": "o" * 32}
    with caplog.at_level(logging.WARNING, logger="dispatcher.regions"):
        state = build_state(env=env, machines=LocalMachines(LocalSettings(bot_command=("true",))), rooms=None)
    try:
        [line] = [r.getMessage() for r in caplog.records if "REGION_ACCEPTED_SECRET" in r.getMessage()]
        assert "remove it" in line and "o" * 32 not in line
    finally:
        await state.aclose()
