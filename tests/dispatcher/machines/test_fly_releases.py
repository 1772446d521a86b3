"""Fly launches each session's machine from its release: the release's image, tagged with the release
in the machine's metadata, read back by any replica; an image Fly's registry lacks is the release's
clear refusal; the reserve's idle machines run (and keep, suspended or stopped, claimed) theirs."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from botchannel.contract import IMAGE_VARIABLE
from dispatcher.app import create_app
from dispatcher.machines.base import MachinesError
from dispatcher.machines.fly.frozen import FlyFrozenMachines
from dispatcher.machines.fly.provider import FlyMachines, FlySettings
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import BOT_IMAGE, FakeFly
from tests.support.dispatcher_server import serving

CHANNEL_URL = "ws://10.0.0.2:8080/bots/channel"
CANARY = "registry.fly.io/voicefleet-bots@sha256:" + "c" * 64


@pytest.fixture
async def fly(fake_fly: FakeFly):  # type: ignore[no-untyped-def]
    fake_fly.registry.add(CANARY)
    provider = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    yield provider
    await provider.aclose()


async def test_a_session_of_a_release_runs_its_image_and_any_replica_reads_its_release(fly, fake_fly) -> None:
    s = replace(spec(), release="canary", image=CANARY)
    launched = await fly.launch(s)
    machine = fake_fly.by_name(f"vf-{s.session_id}")
    assert machine["config"]["image"] == CANARY
    assert launched.machine.release == "canary"
    fake_fly.set_state(f"vf-{s.session_id}", "started")
    other = FlyMachines(FlySettings.from_env(fake_fly.env), LocalCoordination())  # no cache: Fly's record
    try:
        assert (await other.status(s.session_id)).release == "canary"
        assert [m.release for m in await other.list()] == ["canary"]
        assert (await other.wait_started(s.session_id, 5)).release == "canary"
    finally:
        await other.aclose()


async def test_a_session_of_the_default_release_runs_the_deployments_image(fly, fake_fly) -> None:
    s = spec()
    assert (await fly.launch(s)).machine.release == "default"
    assert fake_fly.by_name(f"vf-{s.session_id}")["config"]["image"] == BOT_IMAGE


async def test_a_release_whose_image_fly_lacks_is_refused_naming_the_release(fly, fake_fly) -> None:
    missing = "registry.fly.io/voicefleet-bots@sha256:" + "e" * 64
    with pytest.raises(MachinesError) as refused:
        await fly.launch(replace(spec(), release="r-gone", image=missing))
    assert refused.value.reason == "release_image_missing" and refused.value.retry_after is None
    assert "release 'r-gone'" in refused.value.message and missing in refused.value.message
    with pytest.raises(MachinesError) as idle_refused:
        await fly.launch_idle("b-gone", image=missing, release="r-gone")
    assert idle_refused.value.reason == "release_image_missing"


async def test_an_idle_bot_of_a_release_runs_its_image_and_keeps_its_release_when_claimed(fly, fake_fly) -> None:
    await fly.launch_idle("b1", image=CANARY, release="canary")
    machine = fake_fly.by_name("vf-idle-b1")
    assert machine["config"]["image"] == CANARY
    assert machine["config"]["env"][IMAGE_VARIABLE] == fly.reported_image(CANARY) == CANARY
    assert fly.reported_image(None) == fly.bot_image == BOT_IMAGE
    fake_fly.set_state("vf-idle-b1", "started")
    s = replace(spec(), release="canary", image=CANARY)
    adopted = await fly.adopt("b1", s)
    assert adopted.machine.release == "canary"
    assert (await fly.status(s.session_id)).release == "canary"
    # The claim's three metadata writes, no fourth: Fly allows a burst of 3 per machine.
    assert len([c for c in fake_fly.calls if "/metadata/" in c.path]) == 3


@pytest.mark.parametrize("form", ["suspend", "stop"])
async def test_a_frozen_idle_bot_keeps_its_release(fake_fly, form) -> None:
    fake_fly.registry.add(CANARY)
    fly = FlyFrozenMachines.from_env({**fake_fly.env, "FLY_FROZEN_FORM": form}, CHANNEL_URL, LocalCoordination())
    try:
        assert isinstance(fly, FlyFrozenMachines)
        await fly.launch_idle("b2", image=CANARY, release="canary")
        fake_fly.set_state("vf-idle-b2", "started")
        await fly.freeze("b2")
        await fly.thaw("b2")
        machine = fake_fly.by_name("vf-idle-b2")
        assert machine["config"]["image"] == CANARY and machine["config"]["auto_destroy"] is (form == "suspend")
        s = replace(spec(), release="canary", image=CANARY)
        assert (await fly.adopt("b2", s)).machine.release == "canary"
    finally:
        await fly.aclose()


async def test_a_start_pinned_to_a_release_whose_image_fly_lacks_is_a_clear_502_never_a_500(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    fake_fly.registry.add(CANARY)
    key = "fly-releases-key-0123456789"
    releases = {"releases": [{"name": "stable", "images": {"*": BOT_IMAGE}},
                             {"name": "canary", "images": {"*": CANARY}},
                             {"name": "r-gone", "images": {"*": "registry.fly.io/voicefleet-bots@sha256:" + "e" * 64}}]}
    app = create_app(Settings(machines="fly", api_key_hashes=frozenset({hash_api_key(key)})),
                     env={**fake_fly.env, "RELEASES": json.dumps(releases)},
                     machines=FlyMachines(FlySettings.from_env(fake_fly.env), LocalCoordination()),
                     rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    auth = {"Authorization": f"Bearer {key}"}
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as http:
        try:
            gone = await http.post("/start", json={"release": "r-gone"}, headers=auth)
            canary = await http.post("/start", json={"release": "canary"}, headers=auth)
        finally:
            await app.state.voicefleet.aclose()
    assert gone.status_code == 502 and gone.json()["error"]["code"] == "release_image_missing", gone.text
    assert "release 'r-gone'" in gone.json()["error"]["message"] and "sha256:eee" not in gone.text  # not Fly's words
    assert canary.status_code == 201 and canary.json()["release"] == "canary", canary.text
    assert fake_fly.by_name(f"vf-{canary.json()['session_id']}")["config"]["image"] == CANARY
