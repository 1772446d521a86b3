"""Policy `bot-channel-token-by-reference`: the channel credential is a secret reference, never a value."""

from __future__ import annotations

import json

import pytest

from botchannel.contract import CHANNEL_TOKEN_VARIABLE
from policy import rules
from stacks.tools.mocks import unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.policy.test_pack import violations

POLICY = "bot-channel-token-by-reference"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "gcp:cloudrunv2/service:Service"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:/voicefleet/s/bot-channel-token-AbCdEf:::v-1"
VERSION = "projects/p/secrets/voicefleet-s-bot-channel-token/versions/3"


def task(**container: object) -> dict[str, object]:
    return {"containerDefinitions": json.dumps([{"name": "bot", **container}])}


def test_the_pack_names_the_contracts_variable() -> None:
    assert rules.CHANNEL_TOKEN == CHANNEL_TOKEN_VARIABLE


def test_ecs_token_by_secrets_manager_reference_passes() -> None:
    assert violations(POLICY, TASK, task(secrets=[{"name": "BOT_CHANNEL_TOKEN", "valueFrom": ARN}])) == []


def test_ecs_token_as_a_plain_environment_value_is_a_violation() -> None:
    found = violations(POLICY, TASK, task(environment=[{"name": "BOT_CHANNEL_TOKEN", "value": "x" * 40}]))
    assert len(found) == 1 and "plain environment value" in found[0]


def test_ecs_token_from_anything_but_secrets_manager_is_a_violation() -> None:
    parameter = "arn:aws:ssm:eu-west-1:123456789012:parameter/token"
    found = violations(POLICY, TASK, task(secrets=[{"name": "BOT_CHANNEL_TOKEN", "valueFrom": parameter}]))
    assert len(found) == 1 and "Secrets Manager" in found[0]


def test_ecs_token_on_a_command_line_is_a_violation() -> None:
    found = violations(POLICY, TASK, task(command=["python", "-m", "bot", "--token", "$BOT_CHANNEL_TOKEN"]))
    assert len(found) == 1 and "command line" in found[0]


def test_cloud_run_token_by_secret_key_ref_passes_and_a_value_does_not() -> None:
    def service(env: dict[str, object]) -> dict[str, object]:
        return {"template": {"containers": [{"envs": [{"name": "BOT_CHANNEL_TOKEN", **env}]}]}}

    ref = {"valueSource": {"secretKeyRef": {"secret": "s", "version": "1"}}}
    assert violations(POLICY, SERVICE, service(ref)) == []
    assert len(violations(POLICY, SERVICE, service({"value": "x" * 40}))) == 1


def test_gce_metadata_names_a_secret_version_and_never_holds_the_value() -> None:
    def template(metadata: dict[str, str]) -> dict[str, object]:
        return {"metadata": {"startup-script": "#!/bin/bash", **metadata}}

    assert violations(POLICY, TEMPLATE, template({"bot-secrets": f"OPENAI_API_KEY={VERSION},"
                                                                 f"BOT_CHANNEL_TOKEN={VERSION}"})) == []
    assert len(violations(POLICY, TEMPLATE, template({"bot-secrets": "BOT_CHANNEL_TOKEN=s3cr3t-value"}))) == 1
    assert len(violations(POLICY, TEMPLATE, template({"bot-channel-token": "s3cr3t-value"}))) == 1


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_stack_with_the_channel_passes_its_own_resource_policies(stack: StackRunner, cloud: str) -> None:
    run = stack(cloud, secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL[cloud])
    checked = [r for r in run.registrations if r.type in (TASK, SERVICE, TEMPLATE)]
    assert checked
    found = [f"{r.type} {r.name}: {m}" for r in run.registrations for _, (_, check) in rules.RESOURCE_CHECKS.items()
             for m in check(r.type, unwrap(r.inputs))]
    assert found == []
