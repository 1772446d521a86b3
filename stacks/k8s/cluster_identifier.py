"""`k8sClusterIdentifier` must name the cluster entry the kubeconfig's context uses, or the preview stops.

With an identifier set, pulumi-kubernetes only updates its provider when the kubeconfig changes, even
when it now points at another cluster; the stack would then believe its objects are there and a second
dispatcher fleet would run beside the first. The kubeconfig's cluster entry name (the EKS ARN, GKE's
`gke_…`) stays the same across endpoint switches and CA rotations, so the identifier is that name, and
a kubeconfig whose context names another entry is refused with the ways out (docs/kubernetes.md,
"Changing the kubeconfig").
"""

from __future__ import annotations

from stacks.config.model import KubernetesSettings
from stacks.config.reader import SettingsError
from stacks.k8s.api_endpoint import active_cluster_name


def refuse_another_cluster(cfg: KubernetesSettings) -> None:
    identifier = cfg.cluster_identifier
    if identifier is None:
        return

    def check(kubeconfig: str) -> None:
        name = active_cluster_name(kubeconfig, cfg.context)
        if name is not None and name != identifier:
            raise SettingsError(
                f"Invalid stack configuration: k8sClusterIdentifier is {identifier!r} but the kubeconfig's context "
                f"uses the cluster entry {name!r}. The same cluster: name its entry {identifier!r} in the kubeconfig "
                "again. Another cluster: move the stack (drain, destroy, then up with the new kubeconfig and "
                f"k8sClusterIdentifier {name!r}; docs/kubernetes.md, \"Changing the kubeconfig\")")

    cfg.kubeconfig.apply(check)
