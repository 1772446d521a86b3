"""A stack whose replicas share a store gives them `storeMessageSecret` as `REDIS_MESSAGE_SECRET`,
from the secret store, by reference, to the dispatcher alone: the key they sign their messages to
each other with (dispatcher/store/message_seal.py). Without it the stack makes one
(tests/infra/config/test_made_secrets.py), and a stack with one replica provisions none."""

from __future__ import annotations

import json

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

MESSAGE_SECRET = SECRETS["voicefleet:storeMessageSecret"]
AWS_STORE = {"voicefleet:storePassword": "SENTINEL-store-password-0123456789"}
AWS_REPLICAS = {**CHANNEL["aws"], "dispatcherCount": "2"}
GCP_REPLICAS = {**CHANNEL["gcp"], "dispatcherMinInstances": "2", "dispatcherMaxInstances": "3"}


def bot_inputs(run: Run) -> str:
    """Everything a bot is launched with: its task definitions (AWS), its instance template (GCP)."""
    bots = [r for r in run.of_type("aws:ecs/taskDefinition:TaskDefinition") if "-bot" in r.inputs["family"]]
    bots += run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    assert bots
    return json.dumps([unwrap(r.inputs) for r in bots], default=str)


def test_aws_replicas_read_the_message_secret_by_reference_and_bots_never(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **AWS_STORE}, **AWS_REPLICAS)
    dispatcher = container(run, "-dispatcher")
    secrets = {s["name"]: s["valueFrom"] for s in dispatcher["secrets"]}
    assert secrets["REDIS_MESSAGE_SECRET"].startswith("arn:aws:secretsmanager:")
    assert MESSAGE_SECRET not in json.dumps(dispatcher)
    assert "REDIS_MESSAGE_SECRET" not in bot_inputs(run) and MESSAGE_SECRET not in bot_inputs(run)


def test_gcp_replicas_read_the_message_secret_by_reference_and_bots_never(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, **GCP_REPLICAS)
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = unwrap(service.inputs)["template"]["containers"]
    refs = {e["name"]: e["valueSource"]["secretKeyRef"] for e in dispatcher["envs"] if "valueSource" in e}
    assert refs["REDIS_MESSAGE_SECRET"] == {"secret": "voicefleet-gcp-test-redis-message-secret", "version": "1"}
    readers = {unwrap(m.inputs)["member"] for m in run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
               if m.name.endswith("-redis-message-secret-dispatcher")}
    assert readers == {"serviceAccount:vf-gcp-test-dispatcher@vf-test.iam.gserviceaccount.com"}
    assert "REDIS_MESSAGE_SECRET" not in bot_inputs(run) and MESSAGE_SECRET not in bot_inputs(run)


def test_a_short_message_secret_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:storeMessageSecret must be at least 32 characters"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **AWS_STORE, "voicefleet:storeMessageSecret": "short"},
              **AWS_REPLICAS)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_one_replica_provisions_no_message_secret(stack: StackRunner, cloud: str) -> None:
    run = stack(cloud, secrets={**SECRETS, **CHANNEL_SECRETS}, **CHANNEL[cloud])
    names = [r.name for r in run.registrations if "redis-message-secret" in r.name]
    assert names == []


ACCEPTED = "the-other-message-secret-of-a-change-" + "a" * 12
WITH_ACCEPTED = {**SECRETS, **CHANNEL_SECRETS, **AWS_STORE, "voicefleet:storeAcceptedMessageSecret": ACCEPTED}


def dispatcher_secret_names(run: Run, cloud: str) -> set[str]:
    if cloud == "aws":
        return {s["name"] for s in container(run, "-dispatcher")["secrets"]}
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = unwrap(service.inputs)["template"]["containers"]
    return {e["name"] for e in dispatcher["envs"] if "valueSource" in e}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_accepted_message_secret_reaches_the_dispatcher_only_while_it_is_set(stack: StackRunner,
                                                                                  cloud: str) -> None:
    replicas = AWS_REPLICAS if cloud == "aws" else GCP_REPLICAS
    during = stack(cloud, secrets=WITH_ACCEPTED, **replicas)
    assert "REDIS_ACCEPTED_MESSAGE_SECRET" in dispatcher_secret_names(during, cloud)
    assert ACCEPTED not in json.dumps([unwrap(r.inputs) for r in during.registrations
                                       if "secretVersion" not in r.type and "SecretVersion" not in r.type], default=str)
    assert "REDIS_ACCEPTED_MESSAGE_SECRET" not in bot_inputs(during) and ACCEPTED not in bot_inputs(during)
    after = stack(cloud, secrets={**SECRETS, **CHANNEL_SECRETS, **AWS_STORE}, **replicas)
    assert "REDIS_ACCEPTED_MESSAGE_SECRET" not in dispatcher_secret_names(after, cloud)
    assert "REDIS_MESSAGE_SECRET" in dispatcher_secret_names(after, cloud)


@pytest.mark.parametrize(("secret", "problem"), [
    (MESSAGE_SECRET, "is the same as storeMessageSecret"), ("short", "must be at least 32 characters")])
def test_an_accepted_message_secret_that_cannot_work_is_refused(stack: StackRunner, secret: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"voicefleet:storeAcceptedMessageSecret {problem}"):
        stack("aws", secrets={**WITH_ACCEPTED, "voicefleet:storeAcceptedMessageSecret": secret}, **AWS_REPLICAS)


def test_an_accepted_message_secret_without_a_store_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="storeAcceptedMessageSecret is set but dispatcherCount=1"):
        stack("aws", secrets=WITH_ACCEPTED, **CHANNEL["aws"])


def test_a_message_secret_change_left_half_done_is_a_warning_with_the_command_that_finishes_it(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.tools.preflight import store_rotation

    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    during = stack("aws", secrets=WITH_ACCEPTED, **AWS_REPLICAS)
    (note,) = store_rotation.notes(during.registrations, "aws-prod")
    assert "pulumi config rm storeAcceptedMessageSecret -s aws-prod" in note and ACCEPTED not in note
    (said,) = [w for w in warnings if "storeAcceptedMessageSecret" in w]
    assert "pulumi config rm storeAcceptedMessageSecret" in said and ACCEPTED not in said
    after = stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS, **AWS_STORE}, **AWS_REPLICAS)
    assert store_rotation.notes(after.registrations, "aws-prod") == []
