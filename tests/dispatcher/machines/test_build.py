"""`MACHINES` picks the provider; each reads its own variables and names a missing one."""

from __future__ import annotations

import pytest

from dispatcher.factory import build_machines, build_rooms
from dispatcher.machines.base import WarmMachines
from dispatcher.machines.fly.provider import FlyMachines
from dispatcher.machines.gce.provider import GceMachines
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.media.daily import DailyRooms
from dispatcher.settings import Settings, SettingsError

FLY = {"FLY_API_TOKEN": "t", "FLY_APP": "a", "BOT_IMAGE": "i"}
GCE = {
    "GCE_PROJECT": "p",
    "GCE_ZONE": "z",
    "GCE_INSTANCE_TEMPLATE": "t",
    "GCE_API_URL": "http://127.0.0.1:1",
    "GCE_AUTH": "none",
}


async def test_fly_mode_builds_fly_machines_and_daily_rooms() -> None:
    settings = Settings(machines="fly")
    machines = build_machines(settings, FLY)
    rooms = build_rooms(settings, {"DAILY_API_KEY": "k"})
    assert isinstance(machines, FlyMachines) and isinstance(rooms, DailyRooms)
    await machines.aclose()
    await rooms.aclose()


async def test_gce_mode_builds_gce_machines() -> None:
    machines = build_machines(Settings(machines="gce"), GCE)
    assert isinstance(machines, GceMachines) and not isinstance(machines, WarmMachines)
    await machines.aclose()


async def test_gce_mode_with_a_bot_channel_holds_a_warm_reserve() -> None:
    machines = build_machines(Settings(machines="gce"), {**GCE, "BOT_CHANNEL_URL": "wss://d.example/bots/channel"})
    assert isinstance(machines, GceWarmMachines) and isinstance(machines, WarmMachines)
    await machines.aclose()


def test_a_cloud_mode_without_a_daily_key_names_it() -> None:
    with pytest.raises(SettingsError, match="DAILY_API_KEY"):
        build_rooms(Settings(machines="ecs"), {})


def test_ecs_mode_names_its_missing_variable() -> None:
    with pytest.raises(SettingsError, match="ECS_CLUSTER"):
        build_machines(Settings(machines="ecs"), {"AWS_REGION": "eu-west-1"})


def test_local_mode_has_no_rooms() -> None:
    assert build_rooms(Settings(), {}) is None
