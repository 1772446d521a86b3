"""ECS launches each session's task from its release's task definition revision, tags the task with
the release, and reads it back; a release whose task definition ECS cannot run is a clear error
naming the release (moto behind the proxy, which refuses an INACTIVE revision as ECS does)."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace

import boto3
import pytest

from dispatcher.machines.base import LaunchSpec, MachineState
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings
from dispatcher.machines.ecs.reserve import EcsWarmMachines
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.release_refusals import refused_naming
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.ecs import EcsProxy, moto_task, register_release

CHANNEL_URL = "wss://dispatcher.example.com/bots/channel"


def releases_env(fake: EcsProxy, **images: str) -> dict[str, str]:
    """The provider's environment with the stack's RELEASES naming `images` (release → task definition)."""
    listed = [{"name": name, "images": {"*": image}} for name, image in images.items()]
    return {**fake.env, "ECS_POLL_SECONDS": "0.05", "ECS_RETRY_DEADLINE_SECONDS": "3",
            **({"RELEASES": json.dumps({"releases": listed})} if listed else {})}


def of_release(release: str, image: str) -> LaunchSpec:
    return replace(spec(), release=release, image=image)


def new_release(fake: EcsProxy) -> tuple[str, str]:
    """A release (its own name) whose task definition is a revision of a family of its own."""
    name = f"r-{secrets.token_hex(4)}"
    return name, register_release(fake.moto_url, f"bot-{name}", f"bot:{name}")


async def test_a_session_of_a_release_runs_its_task_definition_and_reads_its_release_back(
        fake_ecs: EcsProxy) -> None:
    release, arn = new_release(fake_ecs)
    ecs = EcsMachines(EcsSettings.from_env(releases_env(fake_ecs, **{release: arn})), LocalCoordination())
    s = of_release(release, arn)
    try:
        launched = await ecs.launch(s)
        assert launched.machine.release == release
        [run] = [r for r in fake_ecs.requests_for("RunTask") if r["startedBy"] == s.session_id]
        assert run["taskDefinition"] == arn
        task = moto_task(fake_ecs.env["ECS_CLUSTER"], launched.machine.machine_id)
        assert task.task_definition_arn == arn  # ECS runs the release's revision, not ECS_TASK_DEFINITION
        assert (await ecs.status(s.session_id)).release == release  # type: ignore[union-attr]
        # Another replica, or the reaper, finds it among the deployment's tasks: its family is the release's.
        assert {m.session_id: m.release for m in await ecs.list()}[s.session_id] == release
        task.last_status, task.desired_status = "STOPPED", "STOPPED"
        fresh = EcsMachines(EcsSettings.from_env(releases_env(fake_ecs, **{release: arn})), LocalCoordination())
        stopped = await fresh.status(s.session_id)  # no cache: found among the families' stopped tasks
        await fresh.aclose()
        assert stopped is not None and stopped.state is MachineState.ENDED and stopped.release == release
    finally:
        await ecs.aclose()


async def test_a_session_of_the_default_release_runs_the_deployment_task_definition(fake_ecs: EcsProxy) -> None:
    ecs = EcsMachines(EcsSettings.from_env(releases_env(fake_ecs)), LocalCoordination())
    try:
        launched = await ecs.launch(spec())
        assert launched.machine.release == "default"
        assert fake_ecs.requests_for("RunTask")[-1]["taskDefinition"] == fake_ecs.env["ECS_TASK_DEFINITION"]
    finally:
        await ecs.aclose()


@pytest.mark.parametrize("gone", ["never registered", "deregistered"])
async def test_a_release_whose_task_definition_ecs_cannot_run_is_refused_naming_the_release(
        fake_ecs: EcsProxy, gone: str) -> None:
    release, arn = new_release(fake_ecs)
    if gone == "never registered":
        arn = arn.rsplit(":", 1)[0] + ":99"
    else:
        boto3.client("ecs", region_name=fake_ecs.env["AWS_REGION"], endpoint_url=fake_ecs.moto_url
                     ).deregister_task_definition(taskDefinition=arn)
    ecs = EcsMachines(EcsSettings.from_env(releases_env(fake_ecs, **{release: arn})), LocalCoordination())
    s = of_release(release, arn)
    try:
        answer = await refused_naming(release, ecs.launch(s))
        assert arn not in answer.message  # the task definition's ARN names the account: the log has it
        assert await ecs.status(s.session_id) is None
    finally:
        await ecs.aclose()


async def test_an_idle_bot_of_a_release_runs_its_task_definition_and_its_session_keeps_the_release(
        fake_ecs: EcsProxy) -> None:
    release, arn = new_release(fake_ecs)
    ecs = EcsWarmMachines(EcsSettings.from_env(releases_env(fake_ecs, **{release: arn})),
                          coordination=LocalCoordination(), channel_url=CHANNEL_URL)
    bot_id = f"rsv-{secrets.token_hex(6)}"
    try:
        await ecs.launch_idle(bot_id, "vfb1.idle.its-own-credential", image=arn, release=release)
        idle_tag = {"key": "voicefleet:idle", "value": bot_id}
        [run] = [r for r in fake_ecs.requests_for("RunTask") if idle_tag in r["tags"]]
        env = {e["name"]: e["value"] for e in run["overrides"]["containerOverrides"][0]["environment"]}
        assert run["taskDefinition"] == arn and env["BOT_IMAGE_DIGEST"] == ecs.reported_image(arn) == arn
        assert ecs.reported_image(None) == ecs.bot_image
        claimed = await ecs.adopt(bot_id, spec())
        assert claimed.machine.release == release
        assert moto_task(fake_ecs.env["ECS_CLUSTER"], claimed.machine.machine_id).task_definition_arn == arn
        await refused_naming(release, ecs.launch_idle(f"rsv-{secrets.token_hex(6)}", None,
                                                      image=arn.rsplit(":", 1)[0] + ":99", release=release))
    finally:
        await ecs.aclose()
