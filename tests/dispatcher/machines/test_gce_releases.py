"""Compute Engine inserts each session's VM from its release's instance template, labels the VM
with the release, and reads it back; a release whose template Compute Engine does not have is a
clear error naming the release (the fake answers 404 `notFound` for it, as the API does)."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchSpec
from dispatcher.machines.gce.provider import GceMachines, GceSettings
from dispatcher.machines.gce.reserve import GceWarmMachines
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.release_refusals import refused_naming
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.gce import FakeGce
from tests.support.dispatcher_server import serving

RELEASE_IMAGE = "europe-docker.pkg.dev/p/r/bot@sha256:" + "9" * 64  # what the release's template runs


def of_release(release: str, image: str) -> LaunchSpec:
    return replace(spec(), release=release, image=image)


def items(vm: dict) -> dict[str, str]:
    return {i["key"]: i["value"] for i in vm["metadata"]["items"]}


@pytest.fixture
async def gce(fake_gce: FakeGce):  # type: ignore[no-untyped-def]
    provider = GceMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination())
    yield provider
    await provider.aclose()


async def test_a_session_of_a_release_runs_its_template_and_reads_its_release_back(gce, fake_gce) -> None:
    template = fake_gce.add_template("voicefleet-bot-r-9f2c", **{"bot-image": RELEASE_IMAGE})
    s = of_release("r-9f2c", template)
    launched = await gce.launch(s)
    assert launched.machine.release == "r-9f2c"
    vm = fake_gce.instances[gce.instance_name(s.session_id)]
    assert vm["sourceInstanceTemplate"] == template
    assert items(vm)["bot-image"] == RELEASE_IMAGE  # the release's template's own items, not the default's
    assert vm["labels"]["voicefleet-release"] == "r-9f2c"
    assert (await gce.status(s.session_id)).release == "r-9f2c"  # type: ignore[union-attr]
    assert {m.session_id: m.release for m in await gce.list()}[s.session_id] == "r-9f2c"
    default = await gce.launch(spec())  # the default release: the deployment's own template, as before
    assert fake_gce.instances[gce.instance_name(default.machine.session_id)]["sourceInstanceTemplate"] == (
        gce.settings.template_path)
    assert default.machine.release == "default"


async def test_a_release_whose_template_does_not_exist_is_refused_naming_the_release(gce, fake_gce) -> None:
    s = of_release("r-gone", "projects/vf-test/global/instanceTemplates/voicefleet-bot-r-gone")
    await refused_naming("r-gone", gce.launch(s))
    assert fake_gce.instances == {}


async def test_a_release_template_deleted_after_it_was_read_is_refused_naming_the_release(gce, fake_gce) -> None:
    template = fake_gce.add_template("voicefleet-bot-r-old")
    await gce.launch(of_release("r-old", template))
    del fake_gce.other_templates["voicefleet-bot-r-old"]  # the stack dropped it; its items are still cached
    await refused_naming("r-old", gce.launch(of_release("r-old", template)))


async def test_an_idle_vm_of_a_release_runs_its_template_and_its_session_keeps_the_release(fake_gce) -> None:
    gce = GceWarmMachines(GceSettings.from_env(fake_gce.env), coordination=LocalCoordination(),
                          max_idle_seconds=900.0, max_session_seconds=1800)
    template = fake_gce.add_template("voicefleet-bot-r-9f2c", **{"bot-image": RELEASE_IMAGE})
    try:
        await gce.launch_idle("rsv-r1", "vfb1.idle.credential", image=template, release="r-9f2c")
        vm = fake_gce.instances["vf-idle-rsv-r1"]
        assert vm["sourceInstanceTemplate"] == template and items(vm)["bot-image"] == RELEASE_IMAGE
        assert items(vm)["bot-image-digest"] == gce.reported_image(template) == template
        assert gce.reported_image(None) == gce.bot_image
        fake_gce.set_status("vf-idle-rsv-r1", "RUNNING")
        claimed = await gce.adopt("rsv-r1", spec())
        assert claimed.machine.release == "r-9f2c"
        assert fake_gce.instances["vf-idle-rsv-r1"]["labels"]["voicefleet-release"] == "r-9f2c"
        await refused_naming("r-gone", gce.launch_idle("rsv-r2", None, image="voicefleet-bot-r-gone", release="r-gone"))
    finally:
        await gce.aclose()


async def test_a_start_pinned_to_a_release_without_its_template_is_a_clear_502_and_leaves_nothing(
        fake_gce: FakeGce, fake_daily) -> None:  # type: ignore[no-untyped-def]
    key = "client-key-0123456789"
    live = fake_gce.add_template("voicefleet-bot-r-live", **{"bot-image": RELEASE_IMAGE})
    gone = "projects/vf-test/global/instanceTemplates/voicefleet-bot-r-gone"
    releases = [{"name": "r-live", "images": {"*": live}}, {"name": "r-gone", "images": {"*": gone}}]
    env = {**fake_gce.env, **fake_daily.env, "RELEASES": json.dumps({"releases": releases})}
    app = create_app(Settings(machines="gce", api_key_hashes=frozenset({hash_api_key(key)})), env=env,
                     machines=GceMachines(GceSettings.from_env(env), coordination=LocalCoordination()))
    headers = {"Authorization": f"Bearer {key}"}
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as api:
        try:
            refused = await api.post("/start", json={"release": "r-gone"}, headers=headers)
            started = await api.post("/start", json={"release": "r-live"}, headers=headers)
        finally:
            await app.state.voicefleet.aclose()
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["code"] == "release_image_missing" and "'r-gone'" in refused.json()["detail"]
    assert started.status_code == 201 and started.json()["release"] == "r-live", started.text
    [vm] = fake_gce.instances.values()  # the refused start made no VM, and its room is gone
    assert vm["sourceInstanceTemplate"] == live and vm["labels"]["voicefleet-release"] == "r-live"
    assert [room["url"] for room in fake_daily.rooms.values()] == [started.json()["room_url"]]
