"""The cluster's sign-in to `k8sRegistry`: a kubernetes.io/dockerconfigjson Secret in each namespace that pulls.

Given `k8sRegistryPullUsername` and `k8sRegistryPullPassword` (a pull-only credential), else
`k8sRegistryUsername` and `k8sRegistryPassword` (the push's), one Secret in the dispatcher's namespace and one
in the bots', each named on its ServiceAccount's `imagePullSecrets` (stacks/k8s/access.py). The
ServiceAccount admission plugin copies them onto every pod created as that account that names none of
its own, so the pods the dispatcher creates (`pods` mode) and those agent-sandbox's controller makes
from the release templates (`agent-sandbox`) pull with it, with no setting of the dispatcher's: both
run as `voicefleet-bot`. Without credentials there is no Secret: the nodes pull with their own rights.

Named by Pulumi, as the dispatcher's Secret (stacks/k8s/secrets.py): a new password replaces the Secret
under a new name, which the ServiceAccounts then name, and the old one goes at the end of the `up`.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pulumi_kubernetes.core as k8s_core

from stacks.config.k8s_registry import K8sRegistry

DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_CONFIG_KEY = ".dockerconfigjson"


def docker_config(host: str, username: str, password: str) -> str:
    """The `~/.docker/config.json` form the kubelet reads: the registry's host → its user and password."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"username": username, "password": password, "auth": auth}}}, sort_keys=True)


class PullSecrets(pulumi.ComponentResource):
    """The registry's credentials in the dispatcher's and the bots' namespaces."""

    dispatcher: pulumi.Output[str]  # the Secret's name in the dispatcher's namespace
    bots: pulumi.Output[str]  # and in the bots'

    def __init__(self, name: str, registry: K8sRegistry, namespaces: tuple[pulumi.Input[str], pulumi.Input[str]],
                 labels: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:PullSecrets", name, None, opts)
        credentials = registry.pulls_with
        assert credentials is not None  # made only with credentials (pull_secrets)
        config: pulumi.Output[str] = pulumi.Output.secret(credentials.password.apply(
            lambda password: docker_config(registry.host, credentials.username, password)))
        made = [k8s_core.v1.Secret(f"{name}-{role}", metadata={"namespace": namespace, "labels": labels},
                                   type=DOCKER_CONFIG_TYPE, string_data={DOCKER_CONFIG_KEY: config},
                                   opts=pulumi.ResourceOptions(parent=self))
                for role, namespace in zip(("dispatcher", "bots"), namespaces, strict=True)]
        self.dispatcher, self.bots = (secret.metadata.name for secret in made)
        self._name, self._config, self._labels = name, config, labels
        self.register_outputs({"dispatcher": self.dispatcher, "bots": self.bots})

    def another(self, role: str, namespace: pulumi.Input[str]) -> pulumi.Output[str]:
        """The same credentials in one more namespace (the SIP edge's), by the Secret's name."""
        return k8s_core.v1.Secret(f"{self._name}-{role}", metadata={"namespace": namespace, "labels": self._labels},
                                  type=DOCKER_CONFIG_TYPE, string_data={DOCKER_CONFIG_KEY: self._config},
                                  opts=pulumi.ResourceOptions(parent=self)).metadata.name


def pull_secrets(name: str, registry: K8sRegistry | None, namespaces: tuple[pulumi.Input[str], pulumi.Input[str]],
                 labels: dict[str, str], opts: pulumi.ResourceOptions) -> PullSecrets | None:
    """The Secrets when the stack is given credentials to pull with; None otherwise (the nodes' own rights)."""
    if registry is None or registry.pulls_with is None:
        return None
    return PullSecrets(f"{name}-pull", registry, namespaces, labels, opts=opts)
