"""The k8s stack's in-cluster store (`k8sStore: in-cluster`, stacks/k8s/store.py) under the mocks: its
objects, strictly valid, through the stack's one provider, in the dispatcher's namespace; no secret in
plain; only the dispatcher's pods let in. The real server's side: test_store_server.py."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from stacks.config.store import PASSWORD_VARIABLE, URL_VARIABLE
from stacks.k8s.store import IMAGE, NAME, PORT, password_hash
from stacks.tools.mocks import Registration, Run, is_secret, unwrap
from tests.fakes.k8s import KUBE_VERSION, restricted_problem
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env, spec
from tests.infra.k8s.test_stack import masked

PASSWORD = "SENTINEL-store-password-0123456789abcd"  # noqa: S105 - a test sentinel
PREVIOUS = "SENTINEL-previous-password-0123456789ab"  # noqa: S105 - a test sentinel
SECRETS = {**{k: v for k, v in ALL_SECRETS.items() if k != "voicefleet:k8sStoreUrl"},
           "voicefleet:storePassword": PASSWORD}
STORE_OBJECTS = {"kubernetes:core/v1:Secret", "kubernetes:core/v1:Service", "kubernetes:apps/v1:StatefulSet",
                 "kubernetes:networking.k8s.io/v1:NetworkPolicy"}


def in_cluster(k8s_stack: K8sRunner, **overrides: Any) -> Run:
    return k8s_stack(secrets=overrides.pop("secrets", SECRETS), k8sStore="in-cluster", **overrides)


@pytest.fixture
def run(k8s_stack: K8sRunner) -> Run:
    return in_cluster(k8s_stack)


def store_objects(run: Run) -> list[Registration]:
    component = run.one("voicefleet:k8s:InClusterStore")
    return [r for r in run.registrations if r.parent == component.urn]


def valkey_conf(run: Run) -> str:
    (secret,) = [r for r in store_objects(run) if r.type == "kubernetes:core/v1:Secret"]
    return str(unwrap(secret.inputs)["stringData"]["valkey.conf"])


def store_pod(run: Run) -> dict[str, Any]:
    return spec(run.one("kubernetes:apps/v1:StatefulSet"))["template"]["spec"]


def full(reg: Registration) -> dict[str, Any]:
    """The object as the API server gets it: a Pulumi-named object's name is filled in by the provider."""
    body = unwrap(reg.inputs)
    return {**body, "metadata": {"name": "auto-named", **body["metadata"]}}


def test_the_store_is_made_only_when_asked_for(k8s: Run, run: Run) -> None:
    assert k8s.of_type("voicefleet:k8s:InClusterStore") == []
    assert {r.type for r in store_objects(run)} == STORE_OBJECTS


def test_its_objects_are_valid_and_go_through_the_one_provider_into_the_dispatchers_namespace(run: Run) -> None:
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    for reg in store_objects(run):
        kubernetes_validate.validate(full(reg), KUBE_VERSION, strict=True)
        assert reg.provider.rsplit("::", 1)[0] == provider.urn
        assert unwrap(reg.inputs)["metadata"]["namespace"] == "voicefleet"


def test_one_pod_of_the_pinned_image_restricted_with_its_data_on_a_volume(run: Run, k8s_stack: K8sRunner) -> None:
    stateful_set = spec(run.one("kubernetes:apps/v1:StatefulSet"))
    assert stateful_set["replicas"] == 1
    pod = store_pod(run)
    assert restricted_problem(pod) is None
    (container,) = pod["containers"]
    assert container["image"] == IMAGE and ":" in IMAGE and not IMAGE.endswith(":latest")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["fsGroup"] == 999
    assert container["args"] == ["valkey-server", "/etc/valkey/valkey.conf", "--dir", "/data"]  # no secret: a file
    assert container["resources"]["requests"] == container["resources"]["limits"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["name"] == "data" and mounts["/etc/valkey"]["readOnly"] is True
    (claim,) = stateful_set["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "1024Mi"
    bigger = spec(in_cluster(k8s_stack, k8sStoreStorage="5Gi").one("kubernetes:apps/v1:StatefulSet"))
    assert bigger["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5120Mi"
    # Applied at creation only: a change would replace the StatefulSet, deleted first (a fixed name).
    assert run.one("kubernetes:apps/v1:StatefulSet").ignore_changes == ("spec.volumeClaimTemplates",)


def test_the_configuration_persists_bounds_memory_and_holds_only_password_hashes(run: Run) -> None:
    conf = valkey_conf(run).splitlines()
    assert {"appendonly yes", "maxmemory-policy noeviction", f"port {PORT}"} <= set(conf)
    assert "user default off resetpass resetkeys resetchannels -@all" in conf
    (user,) = [line for line in conf if line.startswith("user voicefleet ")]
    assert f"#{password_hash(PASSWORD)}" in user.split() and PASSWORD not in "\n".join(conf)


def test_no_secret_value_is_anywhere_in_plain(run: Run) -> None:
    values = [part for value in SECRETS.values() for part in value.split(",")] + [password_hash(PASSWORD)]
    shown = [(r.type, r.name) for r in run.registrations for value in values
             if value in json.dumps(masked(r.inputs), default=str)]
    assert shown == []
    (secret,) = [r for r in store_objects(run) if r.type == "kubernetes:core/v1:Secret"]
    data = secret.inputs["stringData"]
    assert is_secret(data) or all(is_secret(value) for value in data.values())
    pod = json.dumps(store_pod(run))
    assert PASSWORD not in pod and password_hash(PASSWORD) not in pod


def test_the_dispatcher_reaches_it_by_its_service_with_the_password_by_reference(run: Run) -> None:
    env = container_env(run)
    assert env[URL_VARIABLE] == {"name": URL_VARIABLE, "value": f"redis://voicefleet@{NAME}.voicefleet.svc:6379/0"}
    assert env[PASSWORD_VARIABLE]["valueFrom"]["secretKeyRef"]["key"] == PASSWORD_VARIABLE
    (held,) = [unwrap(r.inputs)["stringData"] for r in run.of_type("kubernetes:core/v1:Secret")
               if r not in store_objects(run) and r.name.endswith("-dispatcher")]
    assert held[PASSWORD_VARIABLE] == PASSWORD and URL_VARIABLE not in held
    (service,) = [spec(r) for r in store_objects(run) if r.type == "kubernetes:core/v1:Service"]
    assert service["type"] == "ClusterIP" and service["ports"] == [{"name": "valkey", "port": 6379,
                                                                   "targetPort": "valkey"}]
    deployment = run.one("kubernetes:apps/v1:Deployment")
    made = {r.type: r.urn for r in store_objects(run)}
    assert {made["kubernetes:core/v1:Service"], made["kubernetes:apps/v1:StatefulSet"]} <= set(
        deployment.dependencies)


def test_only_the_dispatchers_pods_may_reach_it_and_it_reaches_nothing(run: Run) -> None:
    (policy,) = [r for r in store_objects(run) if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    rules = spec(policy)
    store_labels = spec(run.one("kubernetes:apps/v1:StatefulSet"))["selector"]["matchLabels"]
    dispatcher_labels = spec(run.one("kubernetes:apps/v1:Deployment"))["selector"]["matchLabels"]
    assert rules["podSelector"] == {"matchLabels": store_labels}
    assert rules["policyTypes"] == ["Ingress", "Egress"] and rules["egress"] == []
    # One source: pods of the policy's own namespace with the dispatcher's labels (no namespaceSelector:
    # the bots' namespace never matches), on the store's port only.
    assert rules["ingress"] == [{"from": [{"podSelector": {"matchLabels": dispatcher_labels}}],
                                 "ports": [{"port": 6379, "protocol": "TCP"}]}]
    assert store_labels != dispatcher_labels


def test_a_rotation_lets_the_previous_password_in_beside_the_new(k8s_stack: K8sRunner) -> None:
    rotating = in_cluster(k8s_stack, secrets={**SECRETS, "voicefleet:storePreviousPassword": PREVIOUS})
    (user,) = [line for line in valkey_conf(rotating).splitlines() if line.startswith("user voicefleet ")]
    assert {f"#{password_hash(PASSWORD)}", f"#{password_hash(PREVIOUS)}"} <= set(user.split())


def test_the_pools_bots_are_given_nothing_of_the_store(k8s_stack: K8sRunner) -> None:
    run = in_cluster(k8s_stack, k8sMode="agent-sandbox", k8sDeployer="ci@example.com")
    assert URL_VARIABLE in container_env(run)
    templates = run.of_type("kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate")
    assert len(templates) == 2  # the default release's and this `up`'s release's
    for template in templates:
        shown = json.dumps(unwrap(template.inputs))
        assert "REDIS" not in shown and NAME not in shown
