"""Azure Container Instances launches each session's group from its release: the release's image,
tagged with the release, read back by any replica; an image the registry lacks (ARM's 400
`InaccessibleImage`) is the release's clear refusal; an idle group runs its release's image and keeps
its release through the claim's tags-only PATCH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from botchannel.contract import IMAGE_VARIABLE
from dispatcher.machines.aci.reserve import AciWarmMachines
from dispatcher.machines.base import MachinesError
from dispatcher.store.local import LocalCoordination
from stacks.azure.launch_policy import launch_rule
from tests.dispatcher.machines.test_aci import provider, spec
from tests.fakes.arm_aci import IMAGE, FakeArmAci

CHANNEL = {"BOT_CHANNEL_URL": "wss://d.example/bots/channel"}
CANARY = "vftest.azurecr.io/bot@sha256:" + "c" * 64
MISSING = "vftest.azurecr.io/bot@sha256:" + "e" * 64


def replica(fake: FakeArmAci) -> AciWarmMachines:
    return AciWarmMachines.from_env({**fake.env, **CHANNEL, "ACI_RETRY_DEADLINE_SECONDS": "3"}, LocalCoordination())


@pytest.fixture
async def aci(fake_aci: FakeArmAci) -> AsyncIterator[AciWarmMachines]:
    fake_aci.registry.add(CANARY)
    machines = replica(fake_aci)
    yield machines
    await machines.aclose()


async def test_a_session_of_a_release_runs_its_image_and_any_replica_reads_its_release(aci, fake_aci) -> None:
    s, default = replace(spec(), release="canary", image=CANARY), spec()
    launched = await aci.launch(s)
    await aci.launch(default)
    container = fake_aci.groups[f"vf-{s.session_id}"]["properties"]["containers"][0]["properties"]
    assert container["image"] == CANARY and fake_aci.secure[f"vf-{s.session_id}"][IMAGE_VARIABLE] == CANARY
    assert fake_aci.groups[f"vf-{default.session_id}"]["properties"]["containers"][0]["properties"]["image"] == IMAGE
    fake_aci.set_state(f"vf-{s.session_id}", "Running")
    other = provider(fake_aci)
    try:
        found = await other.wait_started(s.session_id, 5)
        listed = {m.session_id: m.release for m in await other.list()}
    finally:
        await other.aclose()
    assert launched.machine.release == "canary" and found.release == "canary"
    assert listed == {s.session_id: "canary", default.session_id: "default"}


async def test_a_release_whose_image_the_registry_lacks_is_refused_naming_the_release(aci, fake_aci) -> None:
    with pytest.raises(MachinesError) as refused:
        await aci.launch(replace(spec(), release="r-gone", image=MISSING))
    with pytest.raises(MachinesError) as idle_refused:
        await aci.launch_idle("rsv-gone", image=MISSING, release="r-gone")
    assert refused.value.reason == idle_refused.value.reason == "release_image_missing"
    assert refused.value.retry_after is None
    assert "release 'r-gone'" in refused.value.message and MISSING in refused.value.message
    assert not fake_aci.groups  # nothing made


async def test_a_release_the_launch_policy_does_not_admit_yet_is_refused_as_one_to_try_again(aci, fake_aci) -> None:
    """ARM applies an updated policy definition some time after `pulumi up` wrote it: until then a new
    release's create is a 403 RequestDisallowedByPolicy, which the caller is told to retry."""
    subnet = f"/subscriptions/{fake_aci.env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/vf/providers/" \
             "Microsoft.Network/virtualNetworks/vf/subnets/bots"
    fake_aci.policy = launch_rule(subnet, (fake_aci.env["ACI_BOT_IMAGE"],))  # the policy before this release
    with pytest.raises(MachinesError) as refused:
        await aci.launch(replace(spec(), release="canary", image=CANARY))
    assert refused.value.reason == "aci_policy_pending" and refused.value.retry_after == 60
    assert "release 'canary'" in refused.value.message and CANARY in refused.value.message
    assert not fake_aci.groups


async def test_an_idle_group_of_a_release_runs_its_image_and_keeps_its_release_when_claimed(aci, fake_aci) -> None:
    await aci.launch_idle("rsv-1", "idle-credential", image=CANARY, release="canary")
    group = fake_aci.groups["vf-idle-rsv-1"]
    assert group["properties"]["containers"][0]["properties"]["image"] == CANARY
    assert fake_aci.secure["vf-idle-rsv-1"][IMAGE_VARIABLE] == aci.reported_image(CANARY) == CANARY
    assert aci.reported_image(None) == aci.bot_image == IMAGE
    fake_aci.set_state("vf-idle-rsv-1", "Running")
    s = replace(spec(), release="canary", image=CANARY)
    adopted = await aci.adopt("rsv-1", s)
    assert adopted.machine.release == "canary"
    other = replica(fake_aci)
    try:
        found = await other.status(s.session_id)  # found by its session tag: the claim kept the release's
    finally:
        await other.aclose()
    assert found is not None and found.release == "canary"
