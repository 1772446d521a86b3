"""Recording on Kubernetes: the S3-compatible store's key reaches the dispatcher's container by
reference from a Secret of its own, and nothing a bot is made from."""

from __future__ import annotations

import pytest

from stacks.config.settings import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.helpers import component_outputs, holding
from tests.infra.k8s.conftest import ALL_SECRETS, container_env

KEY_ID = "SENTINEL-recording-key-id-3a9f"
SECRET_KEY = "SENTINEL-recording-secret-key-8c2d"  # noqa: S105 - a test sentinel
STORE = {"recordingDestination": "s3://calls/eu", "recordingEndpoint": "https://minio.example.com"}
SECRETS = {**ALL_SECRETS, "voicefleet:recordingAccessKeyId": KEY_ID, "voicefleet:recordingSecretAccessKey": SECRET_KEY}
VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def recording(k8s_stack: StackRunner, **overrides: str) -> Run:
    return k8s_stack(secrets=SECRETS, recording="on", **{**STORE, **overrides})


def test_recording_off_adds_nothing(k8s: Run) -> None:
    assert not set(container_env(k8s)) & {*VARIABLES, "RECORDING", "RECORDING_DESTINATION"}


def test_the_store_key_is_a_secret_the_dispatcher_reads_by_reference(k8s_stack: StackRunner) -> None:
    run = recording(k8s_stack)
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.name.endswith("-recordings")]
    assert unwrap(secret.inputs["stringData"]) == {"AWS_ENDPOINT_URL_S3": "https://minio.example.com",
                                                   "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env = container_env(run)
    for variable in VARIABLES:
        assert env[variable] == {"name": variable, "valueFrom": {"secretKeyRef": {
            "name": secret.outputs["metadata"]["name"], "key": variable}}}
    assert {k: env[k]["value"] for k in ("RECORDING", "RECORDING_DESTINATION")} == {
        "RECORDING": "on", "RECORDING_DESTINATION": "s3://calls/eu"}


def test_no_bot_template_admission_or_pool_sees_the_store(k8s_stack: StackRunner) -> None:
    run = recording(k8s_stack)
    for value in (KEY_ID, SECRET_KEY):
        assert [(r.type, r.name) for r in holding(run, value)] == [
            ("kubernetes:core/v1:Secret", "voicefleet-k8s-test-recordings")]
    for text in ("AWS_ACCESS_KEY_ID", "minio.example.com", "s3://calls"):
        assert {r.type for r in holding(run, text)} <= {"kubernetes:core/v1:Secret", "kubernetes:apps/v1:Deployment"}


@pytest.mark.parametrize(("overrides", "key"), [
    ({"recordingDestination": "gs://calls"}, "voicefleet:recordingDestination"),
    ({"recordingEndpoint": "minio.example.com"}, "voicefleet:recordingEndpoint"),
])
def test_a_bad_store_is_one_line_naming_its_key(k8s_stack: StackRunner, overrides: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        recording(k8s_stack, **overrides)
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_the_store_key_must_be_secret_config(k8s_stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        k8s_stack(secrets=ALL_SECRETS, recording="on", **STORE)
    assert "voicefleet:recordingAccessKeyId" in str(caught.value)


def test_the_stack_outputs_the_expirations_the_store_needs(k8s_stack: StackRunner) -> None:
    run = recording(k8s_stack, recordingRules="key:acme days=30; release:v7 days=7")
    assert component_outputs(run, "k8s")["recordingRetention"] == [
        {"prefix": "eu/retain-7d/", "days": 7}, {"prefix": "eu/retain-30d/", "days": 30}]


@pytest.mark.parametrize("endpoint", ["http://10.0.4.2:9000", "http://minio:9000", "http://minio.storage.svc:9000",
                                      "https://minio.storage.svc.cluster.local", "https://172.20.0.9",
                                      "https://34.118.10.7"])
def test_a_store_the_bots_cannot_reach_is_refused_at_preview(k8s_stack: StackRunner, endpoint: str) -> None:
    """Each bot uploads its parts to the store itself (the URLs the dispatcher signs name that endpoint),
    and its egress is the public IPv4 internet alone: a private address or a cluster-internal name would
    lose every recording, so the preview refuses it, naming the key."""
    with pytest.raises(SettingsError) as caught:
        recording(k8s_stack, recordingEndpoint=endpoint, k8sBotEgressExcept='["34.118.10.0/24"]')
    message = str(caught.value)
    assert "voicefleet:recordingEndpoint" in message and "bots cannot reach" in message and "\n" not in message


def test_a_public_store_name_passes(k8s_stack: StackRunner) -> None:
    run = recording(k8s_stack, recordingEndpoint="https://s3.eu.example.com:9000")
    assert container_env(run)["AWS_ENDPOINT_URL_S3"]["valueFrom"]["secretKeyRef"]["key"] == "AWS_ENDPOINT_URL_S3"
