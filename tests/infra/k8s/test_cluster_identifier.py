"""A new endpoint or CA for the same cluster must not replace the stack's provider, which would delete
and create again every object it made (namespaces, the dispatcher, sessions cut): with
`k8sClusterIdentifier` set the provider is only updated; a new identifier still replaces it (a move
to another cluster). pulumi-kubernetes' decision is modelled from its source (provider_diff.py)."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.k8s.conftest import ALL_SECRETS
from tests.infra.k8s.provider_diff import replaces_provider
from tests.infra.k8s.test_network_policies import kubeconfig
from tests.infra.k8s.test_updates import up


def provider_inputs(run: Run) -> dict[str, Any]:
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    return {key: unwrap(value) for key, value in provider.inputs.items()}


def with_server(server: str, **overrides: str) -> Run:
    return up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig(server)}, **overrides)


def test_a_new_api_endpoint_replaces_the_provider_unless_the_cluster_is_named() -> None:
    old, new = "https://35.204.1.2", "https://10.0.0.2"  # the public endpoint, then the private one
    assert replaces_provider(provider_inputs(with_server(old)), provider_inputs(with_server(new)))
    named = {"k8sClusterIdentifier": "prod-eu-1"}
    assert not replaces_provider(provider_inputs(with_server(old, **named)), provider_inputs(with_server(new, **named)))


def test_naming_the_cluster_replaces_nothing_and_renaming_it_replaces_the_provider() -> None:
    before = provider_inputs(with_server("https://35.204.1.2"))
    named = provider_inputs(with_server("https://35.204.1.2", k8sClusterIdentifier="prod-eu-1"))
    assert named["clusterIdentifier"] == "prod-eu-1"
    assert not replaces_provider(before, named)
    moved = provider_inputs(with_server("https://35.204.1.2", k8sClusterIdentifier="prod-eu-2"))
    assert replaces_provider(named, moved)


@pytest.mark.parametrize("value", [
    "arn:aws:eks:eu-west-1:123456789012:cluster/prod", "gke_my-project_europe-west4_prod",
    "projects/my-project/locations/europe-west4/clusters/prod", "me@prod.eu-west-1.eksctl.io",
    "/subscriptions/0000/resourceGroups/rg(prod)/providers/Microsoft.ContainerService/managedClusters/aks1"])
def test_the_clouds_own_cluster_names_are_taken(value: str) -> None:
    assert provider_inputs(up(k8sClusterIdentifier=value))["clusterIdentifier"] == value


@pytest.mark.parametrize("value", ["has space", "-leading", "x" * 513, "quote\""])
def test_an_identifier_that_is_not_a_plain_name_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="k8sClusterIdentifier must be a name for the cluster"):
        up(k8sClusterIdentifier=value)


@pytest.mark.parametrize(("context", "identifier", "warned"), [
    ("", "prod", False), ("staging", "staging", False), ("staging", "prod", True), ("", "prod-eu-1", True)])
def test_an_identifier_that_is_not_the_contexts_cluster_is_named_at_every_preview(
        monkeypatch: pytest.MonkeyPatch, context: str, identifier: str, warned: bool) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig(f"https://35.204.1.{len(warnings) + 9}")},
       k8sContext=context, k8sClusterIdentifier=identifier)
    about = [w for w in warnings if "k8sClusterIdentifier" in w]
    assert (len(about) == 1 and "change k8sClusterIdentifier with it" in about[0]) if warned else not about, warnings
