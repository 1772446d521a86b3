"""`usageFiles: recordings`: every cloud's dispatcher is told USAGE_FILES=recordings, and writes its daily usage
file under the recording store's prefix with the grant it has for the recordings; refused with recording off."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.dispatcher_env import dispatcher_envs, refusals
from stacks.tools.mocks import Run
from tests.infra.conftest import K8S_STACK_SECRETS, StackRunner

ON = {"recording": "on", "recordingRules": "key:acme days=30"}
K8S_STORE = {"recordingDestination": "s3://calls/eu", "recordingEndpoint": "https://minio.example.com"}
K8S_SECRETS = {**K8S_STACK_SECRETS, "voicefleet:recordingAccessKeyId": "SENTINEL-recording-key-id",
               "voicefleet:recordingSecretAccessKey": "SENTINEL-recording-secret-key"}
CLOUDS = ["aws", "gcp", "azure", "k8s"]


def run_of(stack: StackRunner, cloud: str, **overrides: str) -> Run:
    extra: dict[str, Any] = {"secrets": K8S_SECRETS, **K8S_STORE} if cloud == "k8s" else {}
    return stack(cloud, **extra, **overrides)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_beside_the_recordings_every_dispatcher_is_told_so(stack: StackRunner, cloud: str) -> None:
    run = run_of(stack, cloud, **ON, usageFiles="recordings")
    envs = dispatcher_envs(run.registrations)
    assert envs and all(env.plain.get("USAGE_FILES") == "recordings" for env in envs)
    assert all(env.plain["RECORDING_DESTINATION"] for env in envs)  # where the dispatcher puts `usage/`
    assert refusals(run.registrations) == refusals(run_of(stack, cloud, **ON).registrations)  # its own check


@pytest.mark.parametrize("cloud", CLOUDS)
def test_off_by_default(stack: StackRunner, cloud: str) -> None:
    envs = dispatcher_envs(run_of(stack, cloud, **ON).registrations)
    assert envs and not [env for env in envs if "USAGE_FILES" in env.plain]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_with_recording_off_it_is_refused_naming_the_way_forward(stack: StackRunner, cloud: str) -> None:
    with pytest.raises(SettingsError) as refused:
        run_of(stack, cloud, usageFiles="recordings")
    message = str(refused.value)
    assert message.startswith("Invalid stack configuration: voicefleet:usageFiles is recordings, but recording is off")
    assert "pulumi config set usageFiles off" in message and "\n" not in message


def test_another_value_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="usageFiles"):
        stack("aws", **ON, usageFiles="s3://team-billing/voice")
