"""Fly's frozen tier: an idle reserve machine suspended and resumed (or stopped and started where
Fly cannot suspend it), every call bounded, and a machine that fails either way destroyed."""

from __future__ import annotations

import time

import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import FreezeFailed, FrozenMachines
from dispatcher.machines.fly.frozen import FlyFrozenMachines, frozen_form_setting
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.fly import FakeFly

CHANNEL_URL = "ws://10.0.0.2:8080/bots/channel"


async def provider(fake: FakeFly, **env: str) -> FlyWarmMachines:
    return FlyFrozenMachines.from_env({**fake.env, **env}, CHANNEL_URL, LocalCoordination())


async def started_idle(fly: FlyWarmMachines, fake: FakeFly, bot_id: str) -> dict:
    await fly.launch_idle(bot_id)
    fake.set_state(f"vf-idle-{bot_id}", "started")
    return fake.by_name(f"vf-idle-{bot_id}")


async def test_a_frozen_reserve_machine_is_suspended_then_resumed(fake_fly) -> None:
    fly = await provider(fake_fly)
    try:
        assert isinstance(fly, FrozenMachines) and fly.frozen_form.name == "suspended"
        machine = await started_idle(fly, fake_fly, "b1")
        await fly.freeze("b1")
        assert machine["state"] == "suspended"
        assert [m.bot_id for m in await fly.idle_machines()] == ["b1"]  # still the reserve's
        await fly.thaw("b1")
        assert machine["state"] == "started"
        assert machine["config"]["auto_destroy"] is True  # gone with its one session, as before
    finally:
        await fly.aclose()


async def test_a_suspend_that_never_completes_destroys_the_machine(fake_fly, monkeypatch) -> None:
    monkeypatch.setattr("dispatcher.machines.fly.frozen.FREEZE_WAIT_SECONDS", 1)
    fly = await provider(fake_fly)
    try:
        machine = await started_idle(fly, fake_fly, "b2")
        fake_fly.suspend_seconds = 30  # stuck in `suspending`
        with pytest.raises(FreezeFailed):
            await fly.freeze("b2")
        assert machine["state"] == "destroyed"  # never left running unaccounted
    finally:
        await fly.aclose()


async def test_a_resume_fly_refuses_destroys_the_machine(fake_fly) -> None:
    fly = await provider(fake_fly)
    try:
        machine = await started_idle(fly, fake_fly, "b3")
        await fly.freeze("b3")
        fake_fly.fail(500, path_contains="/start", times=10)
        with pytest.raises(FreezeFailed):
            await fly.thaw("b3")
        assert machine["state"] == "destroyed"
    finally:
        await fly.aclose()


async def test_a_refused_suspend_retires_the_bot_and_the_tier_stops_machines_from_then_on(fake_fly) -> None:
    fly = await provider(fake_fly)
    try:
        assert isinstance(fly, FlyFrozenMachines)
        machine = await started_idle(fly, fake_fly, "b4")
        machine["config"]["init"] = {"swap_size_mb": 512}  # Fly will not suspend it
        with pytest.raises(FreezeFailed):
            await fly.freeze("b4")
        assert machine["state"] == "destroyed"
        assert fly.frozen_form.name == "stopped"
        later = await started_idle(fly, fake_fly, "b5")
        assert later["config"]["auto_destroy"] is False  # a stopped machine must outlive its stop
        await fly.freeze("b5")
        assert later["state"] == "stopped"
        assert [m.bot_id for m in await fly.idle_machines()] == ["b5"]
        await fly.thaw("b5")
        assert later["state"] == "started"
    finally:
        await fly.aclose()


async def test_the_stopped_form_destroys_a_session_machine_once_it_has_stopped(fake_fly) -> None:
    fly = await provider(fake_fly, FLY_FROZEN_FORM="stop")
    try:
        machine = await started_idle(fly, fake_fly, "b6")
        await fly.freeze("b6")
        await fly.thaw("b6")
        s = spec()
        await fly.adopt("b6", s)
        assert await fly.stop(s.session_id)
        assert machine["state"] == "destroyed"
    finally:
        await fly.aclose()


def test_suspend_is_refused_as_a_setting_where_fly_cannot_suspend(fake_fly) -> None:
    big = FlySettings.from_env({**fake_fly.env, "FLY_GUEST_MEMORY_MB": "4096"})
    assert frozen_form_setting({}, big) == "stop"
    with pytest.raises(SettingsError, match="2048"):
        frozen_form_setting({"FLY_FROZEN_FORM": "suspend"}, big)
    with pytest.raises(SettingsError):
        frozen_form_setting({"FLY_FROZEN_FORM": "hibernate"}, big)


async def test_off_keeps_the_warm_reserve_without_a_frozen_tier(fake_fly) -> None:
    fly = await provider(fake_fly, FLY_FROZEN_FORM="off")
    try:
        assert not isinstance(fly, FrozenMachines)
    finally:
        await fly.aclose()


async def test_the_sweep_gives_a_frozen_machine_its_frozen_age_not_its_idle_age(fake_fly) -> None:
    """A dead dispatcher's idle machines: the running one past its idle age is reaped, a suspended
    one as old is the frozen tier's and stays until its frozen age."""
    dead = await provider(fake_fly)
    for bot_id in ("hot", "frozen", "frozen-long-ago"):
        await started_idle(dead, fake_fly, bot_id)
    for bot_id in ("frozen", "frozen-long-ago"):
        await dead.freeze(bot_id)
    await dead.aclose()
    an_hour_ago = str(int(time.time()) - 3600)
    long_ago = {"vf-idle-hot": "1000", "vf-idle-frozen": an_hour_ago, "vf-idle-frozen-long-ago": "1000"}
    for name, created in long_ago.items():
        fake_fly.by_name(name)["config"]["metadata"]["voicefleet_created_at"] = created
    env = {**fake_fly.env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MAX_IDLE_SECONDS": "900"}
    machines = await provider(fake_fly)
    app = create_app(Settings(machines="fly", bot_channel_token="f" * 40, api_key_hashes=frozenset({b"x"})),
                     env=env, machines=machines, rooms=None)
    try:
        assert await app.state.voicefleet.reserve.sweep() == 2
        states = {m["name"]: m["state"] for m in fake_fly.machines.values()}
        assert states == {"vf-idle-hot": "destroyed", "vf-idle-frozen": "suspended",
                          "vf-idle-frozen-long-ago": "destroyed"}
    finally:
        await app.state.voicefleet.aclose()
