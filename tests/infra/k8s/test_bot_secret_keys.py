"""With k8sBotSecret, a Secret written in the bots' namespace is held to the names botSecrets takes (stacks/k8s/
bot_secret_keys.py): its ValidatingAdmissionPolicy, as the stack sends it, evaluated on the writes a team makes."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.tools.mocks import unwrap
from tests.infra.k8s.admission_cel import Call, refusal
from tests.infra.k8s.conftest import K8sRunner

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
TEAM = "kubernetes-admin"


@pytest.fixture
def policy(k8s_stack: K8sRunner) -> dict[str, Any]:
    run = k8s_stack(k8sBotSecret="team-bot-keys")
    (found,) = [r for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"].endswith("-bot-secret-keys")]
    return unwrap(found.inputs)["spec"]


def written(data: dict[str, str], *, kind: str = "Opaque", field: str = "data", operation: str = "CREATE") -> Call:
    obj = {"metadata": {"name": "team-bot-keys-2", "namespace": "voicefleet-bots"}, "type": kind, field: data}
    return Call(TEAM, operation, "", "secrets", name="team-bot-keys-2", obj=obj,
                old=obj if operation == "UPDATE" else None)


@pytest.mark.parametrize(("key", "field", "operation"), [
    ("deepgram-api-key", "data", "CREATE"),  # kubectl create secret --from-file's file name
    ("1PASSWORD", "stringData", "CREATE"),
    ("LD_PRELOAD", "data", "UPDATE"),  # voicefleet's own: it chooses the code the bot runs
    ("BOT_CHANNEL_TOKEN", "data", "CREATE"),
    ("AWS_SECRET_ACCESS_KEY", "data", "CREATE"),  # the SDK would take it over the bot's own identity
])  # fmt: skip
def test_a_key_no_bot_takes_is_refused_by_name(policy: dict[str, Any], key: str, field: str, operation: str) -> None:
    call = written({"DEEPGRAM_API_KEY": "eA==", key: "eA=="}, field=field, operation=operation)
    message = refusal(policy, call, written=True)
    assert message is not None and message.startswith(f"key {key} of Secret team-bot-keys-2 is no name a bot takes")


def test_the_bots_keys_and_other_kinds_of_secret_pass(policy: dict[str, Any]) -> None:
    assert refusal(policy, written({"DEEPGRAM_API_KEY": "eA==", "AWS_BUCKET_NAME": "eA=="})) is None
    assert refusal(policy, written({".dockerconfigjson": "e30="}, kind="kubernetes.io/dockerconfigjson")) is None
    elsewhere = Call(TEAM, "CREATE", "", "secrets", obj={"type": "Opaque", "data": {"a-b": "eA=="}},
                     namespace="default")
    assert refusal(policy, elsewhere) is None


def test_without_k8s_bot_secret_there_is_no_such_policy(k8s_stack: K8sRunner) -> None:
    run = k8s_stack()
    assert [r for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"].endswith("-bot-secret-keys")] == []


def test_a_secret_of_other_keys_being_deleted_may_lose_its_finalizers(policy: dict[str, Any]) -> None:
    """A Secret written before the policy is not looked at until it is written again; deleting it in the
    foreground (or with a tool's finalizer) ends with the garbage collector's update that removes the finalizer:
    refused, the Secret would stay Terminating, and no one could remove it short of deleting the policy."""
    deleting = {"name": "old-keys", "namespace": "voicefleet-bots", "deletionTimestamp": "2026-11-27T22:00:00Z"}
    old = {"metadata": {**deleting, "finalizers": ["foregroundDeletion"]}, "type": "Opaque",
           "data": {"deepgram-api-key": "eA=="}}
    new = {**old, "metadata": {**deleting, "finalizers": []}}
    call = Call("system:serviceaccount:kube-system:generic-garbage-collector", "UPDATE", "", "secrets",
                name="old-keys", obj=new, old=old)
    assert refusal(policy, call) is None
