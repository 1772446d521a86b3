"""`MACHINES` picks the provider; each reads its own variables and names a missing one."""

from __future__ import annotations

import pytest

from dispatcher.channel.access import ChannelAccess
from dispatcher.factory import build_machines, build_rooms, configuration_problems
from dispatcher.machines.aci.provider import AciMachines
from dispatcher.machines.base import Machines, WarmMachines
from dispatcher.machines.fly.provider import FlyMachines
from dispatcher.machines.gce.provider import GceMachines
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.machines.local.provider import LocalMachines
from dispatcher.media.daily import DailyRooms
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.local import LocalCoordination

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
    machines = build_machines(settings, FLY, LocalCoordination())
    rooms = build_rooms(settings, {"DAILY_API_KEY": "k"})
    assert isinstance(machines, FlyMachines) and isinstance(rooms, DailyRooms)
    await machines.aclose()
    await rooms.aclose()


async def test_gce_mode_builds_gce_machines() -> None:
    machines = build_machines(Settings(machines="gce"), GCE, LocalCoordination())
    assert isinstance(machines, GceMachines) and not isinstance(machines, WarmMachines)
    await machines.aclose()


async def test_gce_mode_with_a_bot_channel_holds_a_warm_reserve() -> None:
    machines = build_machines(Settings(machines="gce"), {**GCE, "BOT_CHANNEL_URL": "wss://d.example/bots/channel"},
                              LocalCoordination())
    assert isinstance(machines, GceWarmMachines) and isinstance(machines, WarmMachines)
    await machines.aclose()


def test_a_cloud_mode_without_a_daily_key_names_it() -> None:
    with pytest.raises(SettingsError, match="DAILY_API_KEY"):
        build_rooms(Settings(machines="ecs"), {})


def test_ecs_mode_names_its_missing_variable() -> None:
    with pytest.raises(SettingsError, match="ECS_CLUSTER"):
        build_machines(Settings(machines="ecs"), {"AWS_REGION": "eu-west-1"}, LocalCoordination())


def test_local_mode_has_no_rooms() -> None:
    assert build_rooms(Settings(), {}) is None


ECS = {"AWS_REGION": "eu-west-1", "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot", "ECS_SUBNETS": "s",
       "ECS_SECURITY_GROUPS": "g", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
CHANNEL = {"BOT_CHANNEL_URL": "wss://d.example/bots/channel"}
ACI = {"AZURE_SUBSCRIPTION_ID": "s", "AZURE_RESOURCE_GROUP": "g", "AZURE_LOCATION": "westeurope",
       "ACI_BOT_IMAGE": "r.azurecr.io/bot@sha256:" + "0" * 64, "ARM_ENDPOINT": "https://127.0.0.1:1",
       "ACI_AUTH": "none"}


async def test_aci_mode_builds_aci_machines_with_a_reserve_only_with_a_channel() -> None:
    warm = build_machines(Settings(machines="aci"), {**ACI, **CHANNEL}, LocalCoordination())
    cold = build_machines(Settings(machines="aci"), ACI, LocalCoordination())
    assert isinstance(warm, AciMachines) and isinstance(warm, WarmMachines)
    assert isinstance(cold, AciMachines) and not isinstance(cold, WarmMachines)
    await warm.aclose()
    await cold.aclose()


def test_aci_mode_names_every_missing_azure_variable_at_once() -> None:
    problems = " ".join(configuration_problems({"MACHINES": "aci", "DAILY_API_KEY": "k"}))
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_LOCATION", "ACI_BOT_IMAGE"):
        assert name in problems


@pytest.mark.parametrize(("kind", "env"), [("ecs", ECS), ("gce", GCE), ("fly", FLY), ("aci", ACI)])
async def test_a_cloud_provider_has_no_channel_to_attach_with_or_without_a_reserve(
    kind: str, env: dict[str, str]
) -> None:
    for machines in (build_machines(Settings(machines=kind), env, LocalCoordination()),
                     build_machines(Settings(machines=kind), {**env, **CHANNEL}, LocalCoordination())):
        assert isinstance(machines, Machines)  # every member of the protocol, none probed for
        machines.attach_channel(ChannelAccess.generated())  # its bots read BOT_CHANNEL_URL: nothing changes
        await machines.aclose()


@pytest.mark.parametrize(("kind", "env", "rate"), [
    ("ecs", ECS, "run_task_rate"),
    ("fly", FLY, "create_rate"),
    ("gce", GCE, "insert_rate"),
])  # fmt: skip
async def test_each_warm_provider_says_which_create_limit_its_reserve_mirrors(
    kind: str, env: dict[str, str], rate: str | None
) -> None:
    machines = build_machines(Settings(machines=kind), {**env, **CHANNEL}, LocalCoordination())
    assert isinstance(machines, WarmMachines)
    expected = getattr(machines.settings, rate) if rate is not None else None  # type: ignore[attr-defined]
    assert machines.create_rate == expected
    assert machines.exit_detail("never-dialled") is None  # a cloud bot's exit is not seen from here
    await machines.aclose()


def test_local_machines_mirror_no_create_limit_and_know_no_exit_of_a_bot_they_never_started() -> None:
    machines = LocalMachines()
    assert isinstance(machines, WarmMachines)
    assert machines.create_rate is None
    assert machines.exit_detail("unknown-bot") is None


def test_the_pre_start_check_names_a_cloud_release_with_env() -> None:
    releases = '{"releases": [{"name": "r-1", "images": {"*": "td:1"}, "env": {"PROMPT": "v2"}}]}'
    problems = " ".join(configuration_problems({"MACHINES": "aci", "DAILY_API_KEY": "k", "RELEASES": releases}))
    assert "remove `env`" in problems
