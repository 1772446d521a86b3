"""BOT_GPU: one neutral name, each provider's own request for it, refused where a provider has none.

No GPU is used here: these are the requests, checked against the fake's copy of the API's rules."""

from __future__ import annotations

import pytest

from dispatcher.factory import configuration_problems
from dispatcher.machines.gce.provider import GceMachines
from dispatcher.machines.gpu import GPU_PROVIDERS, GPUS, gpu_from_env
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.harness import gce_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.gce import PROJECT, ZONE, FakeGce
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry

KEYS = {"DISPATCHER_API_KEYS": "k" * 20}
FLY = {"MACHINES": "fly", **KEYS, "FLY_API_TOKEN": "f", "FLY_APP": "a", "BOT_IMAGE": "i@sha256:0",
       "DAILY_API_KEY": "d"}


def test_every_gpu_has_a_column_for_every_provider_that_offers_gpus() -> None:
    for gpu in GPUS.values():
        assert any(getattr(gpu, provider) for provider in GPU_PROVIDERS), gpu
    assert gpu_from_env({"BOT_GPU": " NVIDIA-L4 "}).gpu.modal == "L4"  # type: ignore[union-attr]
    assert gpu_from_env({}) is None


def test_an_unknown_gpu_names_the_known_ones() -> None:
    with pytest.raises(SettingsError, match="^BOT_GPU='rtx-4090' is not one of nvidia-t4, nvidia-l4, "):
        gpu_from_env({"BOT_GPU": "rtx-4090"})


def test_the_catalogue_offers_exactly_the_gpus_of_the_table() -> None:
    """BOT_GPU's choices (what config check, the page and the schema accept) are the table's rows."""
    assert entry("BOT_GPU", ENUM).choices == tuple(GPUS)


@pytest.mark.parametrize("env", [{"MACHINES": "local"}, FLY])
def test_a_provider_without_gpus_refuses_bot_gpu_at_start_up_in_one_line(env: dict[str, str]) -> None:
    problems = [p for p in configuration_problems({**env, "BOT_GPU": "nvidia-t4"}) if "BOT_GPU" in p]
    assert len(problems) == 1 and "runs no GPU" in problems[0], problems
    assert not [p for p in configuration_problems(env) if "BOT_GPU" in p]


def gce_env(fake: FakeGce, machine_type: str, **gpu: str) -> dict[str, str]:
    return {"MACHINES": "gce", **KEYS, **fake.env, "DAILY_API_KEY": "d", "GCE_MACHINE_TYPE": machine_type, **gpu}


@pytest.mark.parametrize(("gpu", "machine_type"), [("nvidia-l4", "n1-standard-4"), ("nvidia-t4", "e2-standard-2"),
                                                   ("nvidia-l40s", "g2-standard-4")])
def test_compute_engine_refuses_a_gpu_its_machine_type_cannot_have(fake_gce: FakeGce, gpu: str,
                                                                   machine_type: str) -> None:
    [problem] = [p for p in configuration_problems(gce_env(fake_gce, machine_type, BOT_GPU=gpu)) if "BOT_GPU" in p]
    assert gpu in problem


async def launch(fake: FakeGce, machine_type: str, **gpu: str) -> dict[str, object]:
    fake.template_machine_type = machine_type
    provider = gce_harness(fake).make(GCE_MACHINE_TYPE=machine_type, **gpu)
    assert isinstance(provider, GceMachines)
    try:
        s = spec()
        await provider.launch(s)
    finally:
        await provider.aclose()
    return fake.instances[f"vf-{s.session_id}"]


async def test_a_t4_is_attached_to_an_n1_vm_that_terminates_on_host_maintenance(fake_gce: FakeGce) -> None:
    vm = await launch(fake_gce, "n1-standard-4", BOT_GPU="nvidia-t4", BOT_GPU_COUNT="2")
    assert vm["guestAccelerators"] == [{
        "acceleratorType": f"projects/{PROJECT}/zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4",
        "acceleratorCount": 2}]
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"  # type: ignore[index]


async def test_an_l4_comes_with_its_g2_machine_type_and_nothing_is_attached(fake_gce: FakeGce) -> None:
    vm = await launch(fake_gce, "g2-standard-4", BOT_GPU="nvidia-l4")
    assert vm["guestAccelerators"] == []
    assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"  # type: ignore[index]


async def test_without_bot_gpu_the_vm_still_live_migrates(fake_gce: FakeGce) -> None:
    vm = await launch(fake_gce, "e2-standard-2")
    assert vm["guestAccelerators"] == [] and vm["scheduling"]["onHostMaintenance"] == "MIGRATE"  # type: ignore[index]


async def test_the_fake_refuses_a_gpu_vm_that_would_live_migrate_as_the_api_does(fake_gce: FakeGce) -> None:
    """The fake's rule the tests above rely on: a G2 template with the CPU-only scheduling is refused."""
    fake_gce.template_machine_type = "g2-standard-4"
    provider = gce_harness(fake_gce).make()
    try:
        with pytest.raises(Exception, match="live migration"):
            await provider.launch(spec())
    finally:
        await provider.aclose()
