"""When pulumi-kubernetes replaces a `pulumi:providers:kubernetes` (and with it every object it made)
rather than updating it, as its `DiffConfig` decides (pulumi/pulumi-kubernetes,
provider/pkg/provider/provider.go, `func (k *kubeProvider) DiffConfig`):

- `clusterIdentifier` changed from one value to another: replaced;
- `clusterIdentifier` the same and set: never replaced (its deferred `resp.Replaces = nil`);
- otherwise, replaced when `kubeconfig`, `context` or `cluster` changed and the active cluster's entry
  (`getActiveClusterFromConfig`: the context's cluster, its server, CA and TLS name) differs.
Adding or removing the identifier is neither (`diff.Updated` only), so adding it alone replaces nothing.
Computed (unknown) inputs are not modelled: the stack's kubeconfig is a known secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stacks.k8s.api_endpoint import active_cluster

IDENTIFIER = "clusterIdentifier"
CLUSTER_KEYS = ("kubeconfig", "context", "cluster")


def replaces_provider(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    if dict(olds) == dict(news):
        return False
    if IDENTIFIER in olds and IDENTIFIER in news:
        return olds[IDENTIFIER] != news[IDENTIFIER]
    if not any(olds.get(key) != news.get(key) for key in CLUSTER_KEYS):
        return False
    old, new = (active_cluster(str(p.get("kubeconfig", "")), p.get("context")) for p in (olds, news))
    return bool(old) and bool(new) and old != new
