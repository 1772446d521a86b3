"""A planned change that pulumi-kubernetes would carry out as a replacement cutting sessions
(stacks/tools/preflight/replacements.py): a namespace renamed, the dispatcher's Deployment moved."""

from __future__ import annotations

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.plan import checked_plan
from stacks.tools.preflight import replacements
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner


def test_a_renamed_bots_namespace_is_refused_naming_the_key(k8s_stack: K8sRunner) -> None:
    deployed, changed = k8s_stack(), k8s_stack(k8sBotNamespace="bots")
    (found,) = replacements.violations(deployed.registrations, changed.registrations, {"k8sBotNamespace": "bots"})
    assert "kubernetes:core/v1:Namespace" in found and "k8sBotNamespace=bots" in found
    assert "metadata.name from voicefleet-bots to bots" in found and "sessions end" in found


def test_a_moved_dispatcher_is_refused_for_its_namespace_and_its_deployment(k8s_stack: K8sRunner) -> None:
    deployed, changed = k8s_stack(), k8s_stack(k8sDispatcherNamespace="voice")
    found = replacements.violations(deployed.registrations, changed.registrations, {"k8sDispatcherNamespace": "voice"})
    assert any("Namespace" in line for line in found)
    assert any("apps/v1:Deployment" in line and "every dispatcher replica at once" in line for line in found)


def test_a_bigger_in_cluster_store_volume_is_refused_naming_the_claim(k8s_stack: K8sRunner) -> None:
    secrets = {**{k: v for k, v in ALL_SECRETS.items() if k != "voicefleet:k8sStoreUrl"},
               "voicefleet:storePassword": "SENTINEL-store-password-0123456789abcd"}
    deployed = k8s_stack(secrets=secrets, k8sStore="in-cluster")
    (found,) = replacements.violations(deployed.registrations, k8s_stack(
        secrets=secrets, k8sStore="in-cluster", k8sStoreStorage="2Gi").registrations, {"k8sStoreStorage": "2Gi"})
    assert "apps/v1:StatefulSet" in found and "k8sStoreStorage=2Gi" in found and "grow the store's claim" in found


def test_changes_that_update_in_place_pass(k8s_stack: K8sRunner) -> None:
    deployed = k8s_stack()
    for key, value in (("k8sBotMemory", "2Gi"), ("k8sDispatcherReplicas", "3"), ("protect", "true"),
                       ("k8sIngressClass", "traefik")):
        assert replacements.violations(deployed.registrations, k8s_stack(**{key: value}).registrations,
                                       {key: value}) == [], key


def test_the_plan_refuses_the_change() -> None:
    """The plan runs the change as the next `up`, against the stack file's outputs: the program's own refusal
    (stacks/k8s/last_outputs.py) comes first, as in `pulumi up`."""
    with pytest.raises(SettingsError, match="k8sBotNamespace is 'bots', but this stack's last `up` made"):
        checked_plan("k8s-dev", {"k8sBotNamespace": "bots"})
    _, found, _ = checked_plan("k8s-dev", {"k8sBotMemory": "2Gi"})
    assert found == []


def test_a_renamed_cluster_identifier_is_refused_and_a_first_one_passes(k8s_stack: K8sRunner) -> None:
    unnamed, named = k8s_stack(), k8s_stack(k8sClusterIdentifier="prod-eu-1")
    assert replacements.violations(unnamed.registrations, named.registrations,
                                   {"k8sClusterIdentifier": "prod-eu-1"}) == []  # adding one replaces nothing
    (found,) = replacements.violations(named.registrations, k8s_stack(k8sClusterIdentifier="prod-eu-2").registrations,
                                       {"k8sClusterIdentifier": "prod-eu-2"})
    assert "pulumi:providers:kubernetes" in found and "from prod-eu-1 to prod-eu-2" in found
    assert "replaces every object the stack made in the cluster" in found


def test_in_the_agent_sandbox_mode_a_moved_bots_namespace_names_the_warm_pool_too(k8s_stack: K8sRunner) -> None:
    mode = {"k8sMode": "agent-sandbox", "k8sDeployer": "ci@example.com"}
    deployed, changed = k8s_stack(**mode), k8s_stack(**mode, k8sBotNamespace="bots")
    found = replacements.violations(deployed.registrations, changed.registrations, {"k8sBotNamespace": "bots"})
    pool = [line for line in found if "SandboxWarmPool" in line]
    assert pool and "metadata.namespace from voicefleet-bots to bots" in pool[0] and "idle bots" in pool[0]
    assert any("SandboxTemplate" in line for line in found)
    assert replacements.violations(deployed.registrations, k8s_stack(**mode, k8sBotMemory="2Gi").registrations,
                                   {"k8sBotMemory": "2Gi"}) == []  # a new pod template: updated in place
