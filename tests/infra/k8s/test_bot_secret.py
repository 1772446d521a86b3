"""The bots' keys on k8s (stacks/k8s/bot_secret.py): one Secret in the bots' namespace, named by reference in
every bot pod (the dispatcher's pods mode and the agent-sandbox templates), never a value in plain, and a new
name, hence a rollout, whenever a value changes."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from stacks.tools.mocks import Registration, Run, is_secret, unwrap
from tests.fakes.k8s import KUBE_VERSION
from tests.fakes.k8s_sandbox import crd_schemas, schema_problems
from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env
from tests.infra.k8s.test_agent_sandbox import DEPLOYER, POOL, TEMPLATE, body, dispatcher_env, pod_template
from tests.infra.k8s.test_bot_pods_policy import DISPATCHER, created, pods_of, policy_of, stored
from tests.infra.k8s.test_stack import masked

KEYS = {"CARTESIA_API_KEY": "SENTINEL-cartesia-key-61f0", "DEEPGRAM_API_KEY": "SENTINEL-deepgram-key-93aa"}
SECRET = "kubernetes:core/v1:Secret"
ROLES = ("kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")


def with_keys(keys: dict[str, str] | None = None) -> dict[str, str]:
    """The stack's secrets and `botSecrets` as `pulumi config set --secret --path 'botSecrets.NAME'` leaves it:
    one secret object to the program."""
    return {**ALL_SECRETS, "voicefleet:botSecrets": json.dumps(KEYS if keys is None else keys)}


def bots_secrets(run: Run) -> list[Registration]:
    return [r for r in run.of_type(SECRET) if unwrap(r.inputs)["metadata"].get("namespace") == "voicefleet-bots"
            and unwrap(r.inputs).get("type") == "Opaque"]


def keys_secret(run: Run) -> Registration:
    """This `up`'s (the last one's, kept while its replicas drain, has no values of its own: the state's)."""
    (secret,) = [r for r in bots_secrets(run) if "stringData" in r.inputs]
    return secret


def secret_name(run: Run) -> str:
    return str(unwrap(keys_secret(run).inputs)["metadata"]["name"])


def test_the_stack_writes_one_opaque_immutable_secret_of_the_keys_in_the_bots_namespace(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets=with_keys())
    secret = unwrap(keys_secret(run).inputs)
    assert secret["type"] == "Opaque" and secret["immutable"] is True
    assert secret["stringData"] == KEYS and "data" not in secret
    assert secret["metadata"]["name"].startswith("voicefleet-k8s-test-bot-keys-")
    # Each value a Pulumi secret in the inputs (encrypted in the state, `[secret]` in a preview).
    data = keys_secret(run).inputs["stringData"]
    assert is_secret(data) or all(is_secret(value) for value in data.values())
    # No key of the dispatcher's in it, and none of the bots' in the dispatcher's.
    dispatchers = [r for r in run.of_type(SECRET) if r.name.endswith("-dispatcher")]
    assert not [key for r in dispatchers for key in KEYS if key in json.dumps(unwrap(r.inputs))]


def test_no_key_value_is_anywhere_in_plain_nor_in_the_secrets_name(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets=with_keys())
    shown = [(r.type, r.name) for r in run.registrations for value in KEYS.values()
             if value in json.dumps(masked(r.inputs), default=str)]
    assert shown == []
    outputs = json.dumps(component_outputs(run, "k8s"), default=str)
    assert not [value for value in KEYS.values() if value in outputs]
    assert not [value for value in KEYS.values() if value in secret_name(run)]


def test_without_keys_there_is_no_secret_and_no_reference(k8s: Run) -> None:
    assert bots_secrets(k8s) == []
    assert "K8S_BOT_SECRET" not in container_env(k8s)


def test_the_dispatcher_names_the_secret_and_its_pods_take_it_by_reference(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets=with_keys())
    env = container_env(run)
    assert env["K8S_BOT_SECRET"] == {"name": "K8S_BOT_SECRET", "value": secret_name(run)}
    plain = {name: entry["value"] for name, entry in env.items() if "value" in entry}
    pod = pods_of(plain, body={"CARTESIA_API_KEY": "launch"})[0]  # as the dispatcher creates a session's pod
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": secret_name(run)}}]
    # The values never enter the pod's spec: the kubelet reads the Secret when the container starts.
    assert not [value for value in KEYS.values() if value in json.dumps(pod)]
    # The pods mode's admission policy admits it, and no other Secret, however named.
    policy = policy_of(run)
    assert refusal(policy, created(DISPATCHER, stored(pod))) is None
    for other in ({"secretRef": {"name": "voicefleet-bots-registry"}}, {"configMapRef": {"name": secret_name(run)}},
                  {"secretRef": {"name": secret_name(run)}, "prefix": "X_"}):
        refused = stored(pod)
        refused["spec"]["containers"][0]["envFrom"] = [other]
        assert refusal(policy, created(DISPATCHER, refused)) is not None, other


def test_the_dispatcher_keeps_no_verb_on_secrets(k8s_stack: K8sRunner) -> None:
    """The kubelet resolves the reference; the dispatcher only names the Secret (docs/kubernetes.md, "Its keys")."""
    for run in (k8s_stack(secrets=with_keys()), k8s_stack(secrets=with_keys(), k8sMode="agent-sandbox",
                                                          k8sDeployer=DEPLOYER)):
        rules = [rule for typ in ROLES for r in run.of_type(typ) for rule in unwrap(r.inputs).get("rules") or []]
        assert rules and not [rule for rule in rules if {"secrets", "*"} & set(rule["resources"])], rules


def test_the_agent_sandbox_templates_take_the_secret_by_reference(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets=with_keys(), k8sMode="agent-sandbox", k8sDeployer=DEPLOYER)
    name = secret_name(run)
    templates = [body(r)["spec"]["podTemplate"] for r in run.of_type(TEMPLATE)]
    assert len(templates) >= 2  # the default pool's and each release's
    for template in templates:
        (container,) = template["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": name}}]
    assert dispatcher_env(run)["K8S_BOT_SECRET"] == name
    # Valid against agent-sandbox's CRD (the pod template is a strict v1 pod, envFrom included).
    schema = crd_schemas("sandboxtemplates")["v1beta1"]
    assert all(schema_problems(body(r), schema) == ([], []) for r in run.of_type(TEMPLATE))
    template = pod_template(run)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "template",
                                  **template["metadata"]}, "spec": template["spec"]}, KUBE_VERSION, strict=True)
    # Every template and pool comes after the Secret: no warm pod starts before its keys exist (a template names
    # it, a pool waits for its template).
    secret = keys_secret(run).urn
    assert all(secret in r.dependencies for r in run.of_type(TEMPLATE))
    templates = {r.urn for r in run.of_type(TEMPLATE)}
    assert all(templates & set(r.dependencies) for r in run.of_type(POOL))
    shown = [(r.type, r.name) for r in run.registrations for value in KEYS.values()
             if value in json.dumps(masked(r.inputs), default=str)]
    assert shown == []


def test_a_new_value_is_a_new_secret_name_a_new_template_and_a_rolled_dispatcher(k8s_stack: K8sRunner) -> None:
    """The rollout marker: the name is a keyed digest of the values, so a rotation replaces the Secret under a new
    name, changes the templates' digest (their `Recreate` pools replace the warm bots) and the dispatcher's pod
    template (its replicas roll, and retire idle pods of the old name); the same values keep every name."""
    def sandbox(keys: dict[str, str]) -> Run:
        return k8s_stack(secrets=with_keys(keys), k8sMode="agent-sandbox", k8sDeployer=DEPLOYER)

    first, again = sandbox(KEYS), sandbox(KEYS)
    rotated = sandbox({**KEYS, "CARTESIA_API_KEY": "SENTINEL-cartesia-key-rotated"})
    assert secret_name(first) == secret_name(again) != secret_name(rotated)
    digests = [component_outputs(run, "k8s")["botTemplate"] for run in (first, again, rotated)]
    assert digests[0] == digests[1] != digests[2]
    assert pod_template(first) == pod_template(again) != pod_template(rotated)
    assert dispatcher_env(first)["K8S_BOT_SECRET"] != dispatcher_env(rotated)["K8S_BOT_SECRET"]
    # A new key (not only a new value) is a new name too; the stack's message secret keys the digest.
    assert secret_name(sandbox({**KEYS, "OPENAI_API_KEY": "SENTINEL-openai"})) != secret_name(first)


def test_the_pods_mode_admits_the_last_ups_secret_while_replicas_roll(k8s_stack: K8sRunner) -> None:
    last = "voicefleet-k8s-test-bot-keys-000000000000"
    previous = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet", "botSecret": last}
    run = k8s_stack(secrets=with_keys(), previous=previous)
    env = {name: entry["value"] for name, entry in container_env(run).items() if "value" in entry}
    pod = pods_of({**env, "K8S_BOT_SECRET": last})[0]
    assert refusal(policy_of(run), created(DISPATCHER, pod)) is None
    assert refusal(policy_of(k8s_stack(secrets=with_keys())), created(DISPATCHER, pod)) is not None
    assert component_outputs(run, "k8s")["botSecret"] == secret_name(run)  # what the next `up` reads back


@pytest.mark.parametrize("mode", [{}, {"k8sMode": "agent-sandbox", "k8sDeployer": DEPLOYER}])
def test_a_secret_of_the_teams_own_is_named_and_not_written(k8s_stack: K8sRunner, mode: dict[str, Any]) -> None:
    run = k8s_stack(k8sBotSecret="team-bot-keys", **mode)
    assert bots_secrets(run) == []
    assert container_env(run)["K8S_BOT_SECRET"]["value"] == "team-bot-keys"
    if mode:
        (container,) = pod_template(run)["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "team-bot-keys"}}]
