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


def named_kubeconfig(name: str, server: str = "https://35.204.1.2") -> str:
    """A kubeconfig whose one context uses the cluster entry `name` (as `aws eks update-kubeconfig` and
    `gcloud container clusters get-credentials` name theirs)."""
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: '{name}'\n  cluster: "
            f"{{server: '{server}'}}\ncontexts:\n- name: c\n  context: {{cluster: '{name}', user: u}}\n"
            "users:\n- name: u\n  user: {token: SENTINEL-kubeconfig-token-4d1c}\n")


def with_server(server: str, **overrides: str) -> Run:
    return up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig(server)}, **overrides)


def test_a_new_api_endpoint_replaces_the_provider_unless_the_cluster_is_named() -> None:
    old, new = "https://35.204.1.2", "https://10.0.0.2"  # the public endpoint, then the private one
    assert replaces_provider(provider_inputs(with_server(old)), provider_inputs(with_server(new)))
    named = {"k8sClusterIdentifier": "prod"}  # the context's cluster entry
    assert not replaces_provider(provider_inputs(with_server(old, **named)), provider_inputs(with_server(new, **named)))


def test_naming_the_cluster_replaces_nothing_and_another_cluster_replaces_the_provider() -> None:
    before = provider_inputs(with_server("https://35.204.1.2"))
    named = provider_inputs(with_server("https://35.204.1.2", k8sClusterIdentifier="prod"))
    assert named["clusterIdentifier"] == "prod"
    assert not replaces_provider(before, named)
    elsewhere = named_kubeconfig("arn:aws:eks:eu-west-1:123456789012:cluster/prod", "https://52.18.0.7")
    moved = provider_inputs(up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": elsewhere},
                               k8sClusterIdentifier="arn:aws:eks:eu-west-1:123456789012:cluster/prod"))
    assert replaces_provider(named, moved)


@pytest.mark.parametrize("value", [
    "arn:aws:eks:eu-west-1:123456789012:cluster/prod", "gke_my-project_europe-west4_prod",
    "projects/my-project/locations/europe-west4/clusters/prod", "prod.eu-west-1.eksctl.io",
    "/subscriptions/0000/resourceGroups/rg(prod)/providers/Microsoft.ContainerService/managedClusters/aks1"])
def test_the_clouds_own_cluster_names_are_taken(value: str) -> None:
    run = up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": named_kubeconfig(value)}, k8sClusterIdentifier=value)
    assert provider_inputs(run)["clusterIdentifier"] == value


@pytest.mark.parametrize("value", ["has space", "-leading", "x" * 513, "quote\""])
def test_an_identifier_that_is_not_a_plain_name_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="k8sClusterIdentifier must be the kubeconfig's name for the cluster"):
        up(k8sClusterIdentifier=value)


@pytest.mark.parametrize(("context", "identifier", "refused"), [
    ("", "prod", False), ("staging", "staging", False), ("staging", "prod", True), ("", "prod-eu-1", True)])
def test_an_identifier_that_is_not_the_contexts_cluster_entry_stops_the_preview(
        context: str, identifier: str, refused: bool) -> None:
    run = lambda: up(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig("https://35.204.1.2")},  # noqa: E731
                     k8sContext=context, k8sClusterIdentifier=identifier)
    if refused:
        with pytest.raises(SettingsError, match="uses the cluster entry .* name its entry"):
            run()
    else:
        assert provider_inputs(run())["clusterIdentifier"] == identifier
