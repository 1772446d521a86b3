"""What the ECS provider sends to RunTask (moto behind the proxy), and ECS-specific behaviour."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.ecs.provider import EcsMachines, EcsSettings, parse_capacity_providers, to_machine
from dispatcher.settings import SettingsError
from tests.dispatcher.machines.harness import ecs_harness
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.ecs import EcsProxy


@pytest.fixture
async def ecs(fake_ecs: EcsProxy):  # type: ignore[no-untyped-def]
    provider = ecs_harness(fake_ecs).make()
    yield provider
    await provider.aclose()


async def test_run_task_is_idempotent_by_client_token_and_findable_by_started_by(
    ecs: EcsMachines, fake_ecs: EcsProxy
) -> None:
    s = spec()
    await ecs.launch(s)
    run = fake_ecs.requests_for("RunTask")[0]
    assert run["clientToken"] == s.session_id
    assert run["startedBy"] == s.session_id
    assert run["count"] == 1


async def test_the_bot_token_is_an_environment_override_not_a_command(ecs: EcsMachines, fake_ecs: EcsProxy) -> None:
    await ecs.launch(spec())
    override = fake_ecs.requests_for("RunTask")[0]["overrides"]["containerOverrides"][0]
    assert override["name"] == "bot"
    assert "command" not in override
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["DAILY_TOKEN"] == "bot.jwt.secret"
    assert env["VOICEFLEET_BODY"] == '{"persona":"tester"}'


async def test_tags_carry_the_session_body_digest_and_creation_time(ecs: EcsMachines, fake_ecs: EcsProxy) -> None:
    s = spec()
    await ecs.launch(s)
    tags = {t["key"]: t["value"] for t in fake_ecs.requests_for("RunTask")[0]["tags"]}
    assert tags["voicefleet:session"] == s.session_id
    assert tags["voicefleet:body-digest"] == s.body_digest
    assert tags["voicefleet:created-at"].isdigit()


async def test_network_and_capacity_come_from_the_settings(fake_ecs: EcsProxy) -> None:
    provider = ecs_harness(fake_ecs).make(ECS_CAPACITY_PROVIDERS="FARGATE_SPOT:1,FARGATE:1:1")
    await provider.launch(spec())
    await provider.aclose()
    run = fake_ecs.requests_for("RunTask")[0]
    assert run["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0},
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
    ]
    assert "launchType" not in run  # RunTask refuses both
    vpc = run["networkConfiguration"]["awsvpcConfiguration"]
    assert vpc["subnets"] == [fake_ecs.env["ECS_SUBNETS"]] and vpc["assignPublicIp"] == "ENABLED"


async def test_a_body_too_large_for_overrides_is_refused_before_calling_ecs(
    ecs: EcsMachines, fake_ecs: EcsProxy
) -> None:
    big = spec().__class__(**{**spec().__dict__, "body": {"x": "y" * 9000}})
    with pytest.raises(MachinesError) as caught:
        await ecs.launch(big)
    assert caught.value.reason == "spec_too_large"
    assert fake_ecs.requests_for("RunTask") == []


async def test_stop_asks_ecs_to_stop_the_task_with_a_reason(ecs: EcsMachines, fake_ecs: EcsProxy) -> None:
    s = spec()
    await ecs.launch(s)
    await ecs.stop(s.session_id)
    assert fake_ecs.requests_for("StopTask")[0]["reason"] == "voicefleet: session stopped"


def test_a_spot_interruption_is_a_failed_session() -> None:
    task = {
        "taskArn": "arn:t",
        "lastStatus": "STOPPED",
        "stopCode": "SpotInterruption",
        "containers": [{"exitCode": 0}],
    }
    machine = to_machine(task)
    assert machine.state is MachineState.FAILED and machine.detail == "fargate spot interruption"


def test_a_task_that_failed_to_start_is_failed() -> None:
    task = {
        "taskArn": "arn:t",
        "lastStatus": "STOPPED",
        "stopCode": "TaskFailedToStart",
        "stoppedReason": "CannotPullContainerError",
    }
    assert to_machine(task).state is MachineState.FAILED


def test_capacity_providers_parse_weights_and_bases() -> None:
    assert parse_capacity_providers("FARGATE") == ({"capacityProvider": "FARGATE", "weight": 1, "base": 0},)
    with pytest.raises(SettingsError, match="ECS_CAPACITY_PROVIDERS"):
        parse_capacity_providers("FARGATE:x")


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="ECS_SUBNETS"):
        EcsSettings.from_env(
            {"AWS_REGION": "eu-west-1", "ECS_CLUSTER": "c", "ECS_TASK_DEFINITION": "bot", "ECS_SECURITY_GROUPS": "sg"}
        )


def test_family_is_read_from_a_name_a_revision_or_an_arn() -> None:
    base = {"region": "r", "cluster": "c", "subnets": ("s",), "security_groups": ("g",)}
    for value in ("bot", "bot:42", "arn:aws:ecs:eu-west-1:1:task-definition/bot:42"):
        assert EcsSettings(task_definition=value, **base).family == "bot"  # type: ignore[arg-type]


async def test_started_by_is_the_only_filter_the_provider_sends(ecs: EcsMachines, fake_ecs: EcsProxy) -> None:
    """The proxy refuses startedBy with another filter, as the AWS API reference says ECS does;
    the provider still finds a session's task after it stopped, from another replica too."""
    s = spec()
    await ecs.launch(s)
    assert await ecs.stop(s.session_id) is True
    harness = ecs_harness(fake_ecs)
    await harness.move(s.session_id, "ended")
    replica = harness.make()  # knows no task ARN: must find the stopped task by listing
    try:
        found = await replica.status(s.session_id)
    finally:
        await replica.aclose()
    assert found is not None and found.state is MachineState.ENDED
    lists = fake_ecs.requests_for("ListTasks")
    by_session = [r for r in lists if "startedBy" in r]
    assert by_session and all(set(r) <= {"cluster", "startedBy", "nextToken"} for r in by_session)


def test_the_fake_refuses_started_by_with_another_filter(fake_ecs: EcsProxy) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("ecs", region_name=fake_ecs.env["AWS_REGION"], endpoint_url=fake_ecs.env["AWS_ENDPOINT_URL"])
    with pytest.raises(ClientError, match="startedBy must be the only filter"):
        client.list_tasks(cluster=fake_ecs.env["ECS_CLUSTER"], startedBy="x", desiredStatus="STOPPED")


async def test_ecs_calls_are_not_serialised_behind_a_few_threads(ecs: EcsMachines, fake_ecs: EcsProxy) -> None:
    """20 launches are at ECS at once (boto3 in asyncio's default pool had at most 6 on 2 cores;
    the aiohttp pool allows 100, more than moto here could serve quickly)."""
    at_once = 20
    held = fake_ecs.hold(times=at_once, method="POST")
    launches = [asyncio.create_task(ecs.launch(spec())) for _ in range(at_once)]
    try:
        assert await fake_ecs.eventually(lambda: held.caught == at_once, timeout=30)
    finally:
        held.release()
        await asyncio.gather(*launches, return_exceptions=True)


async def test_a_webrtc_session_runs_the_webrtc_bots_task_definition_and_is_listed_with_the_others(
    fake_ecs: EcsProxy,
) -> None:
    import boto3

    ecs_api = boto3.client("ecs", region_name=fake_ecs.env["AWS_REGION"], endpoint_url=fake_ecs.env["AWS_ENDPOINT_URL"])
    ecs_api.register_task_definition(  # the stack's second image variant (SmallWebRTC)
        family="bot-webrtc", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024", memory="2048",
        containerDefinitions=[{"name": "bot", "image": "bot:webrtc", "essential": True, "memory": 2048}],
    )  # fmt: skip
    provider = ecs_harness(fake_ecs).make(ECS_TASK_DEFINITION_WEBRTC="bot-webrtc")
    try:
        webrtc = replace(spec(), room_url=None, bot_token=None, transport="webrtc")
        daily = replace(spec(), transport="daily")
        await provider.launch(webrtc)
        await provider.launch(daily)
        runs = {r["startedBy"]: r["taskDefinition"] for r in fake_ecs.requests_for("RunTask")}
        assert (runs[webrtc.session_id], runs[daily.session_id]) == ("bot-webrtc", fake_ecs.env["ECS_TASK_DEFINITION"])
        listed = {m.session_id: m.transport for m in await provider.list()}
        assert {webrtc.session_id: "webrtc", daily.session_id: "daily"}.items() <= listed.items()
    finally:
        await provider.aclose()


def test_a_task_without_our_creation_tag_is_dated_by_ecs_epoch_seconds() -> None:
    """ECS's JSON answers carry timestamps as epoch seconds (boto3 used to make them datetimes)."""
    task = {"taskArn": "arn:t", "lastStatus": "RUNNING", "createdAt": 1795349679.5, "tags": []}
    assert to_machine(task).created_at == 1795349679.5
