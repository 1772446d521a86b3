"""A warning when `k8sClusterIdentifier` is not the name of the cluster the kubeconfig's context uses.

With an identifier set, pulumi-kubernetes only updates its provider when the kubeconfig changes, even
when it now points at another cluster; the stack would then believe its objects are there. The
kubeconfig's cluster entry name (the EKS ARN, GKE's `gke_…`) stays the same across endpoint switches
and CA rotations, so an identifier equal to it is quiet, and one that differs is named at every preview.
"""

from __future__ import annotations

import pulumi

from stacks.config.model import KubernetesSettings
from stacks.k8s.api_endpoint import active_cluster_name


def warn_if_another_cluster(cfg: KubernetesSettings) -> None:
    identifier = cfg.cluster_identifier
    if identifier is None:
        return

    def check(kubeconfig: str) -> None:
        name = active_cluster_name(kubeconfig, cfg.context)
        if name is not None and name != identifier:
            pulumi.log.warn(f"k8sClusterIdentifier is {identifier!r} but the kubeconfig's context uses cluster "
                            f"{name!r}: if the kubeconfig now points at another cluster, change k8sClusterIdentifier "
                            "with it, or the stack believes its objects are there already (docs/kubernetes.md, "
                            "\"Changing the kubeconfig\")")

    cfg.kubeconfig.apply(check)
