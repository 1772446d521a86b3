"""`k8sChannelTls` naming a mesh that encrypts pod traffic without changing the bots' pods.

The channel runs `ws://` inside such a mesh; the mesh must add nothing to a bot pod, because the
pods-mode admission policy admits only what the dispatcher builds (no extra or init container) and the
bots' namespace enforces Pod Security `restricted` (no NET_ADMIN init container). Two do:

- `istio-ambient`: Istio's ambient mode. Its node proxy (ztunnel) redirects inside the pod's network
  namespace and carries pod-to-pod traffic as HBONE on port 15008 of the destination pod, which
  NetworkPolicy sees and must allow (Istio's "Ambient and Kubernetes NetworkPolicy"); kubelet probes
  reach an ambient pod from 169.254.7.127. Both namespaces, and the model service's, are labelled
  `istio.io/dataplane-mode: ambient`.
- `cilium`: Cilium's transparent encryption (WireGuard or IPsec between nodes): no pod, port or
  policy changes.

A sidecar mesh (Istio's sidecar mode, Linkerd) is refused at the configuration (stacks/config/k8s.py):
its injected proxy and init container are what the admission policy and `restricted` refuse.
"""

from __future__ import annotations

from typing import Any

from stacks.config.k8s import ISTIO_AMBIENT

HBONE_PORT = 15008
# The source Istio's ambient mode gives kubelet probes (SNAT), which a policy limiting ingress must let in.
AMBIENT_PROBE_SOURCE = "169.254.7.127/32"
AMBIENT_NAMESPACE_LABELS = {"istio.io/dataplane-mode": "ambient"}


def kept_mesh(channel_tls: str, last: str | None) -> str:
    """The mesh the NetworkPolicies let through: Istio ambient while this `up` or the last one labels the
    namespaces (a label's removal is deleted at the end of the `up`, after the policies' updates)."""
    return ISTIO_AMBIENT if ISTIO_AMBIENT in (channel_tls, last) else channel_tls


def tunnel_ports(channel_tls: str) -> list[dict[str, Any]]:
    """The ports a meshed pod's traffic arrives on besides its own (HBONE under Istio ambient)."""
    return [{"port": HBONE_PORT, "protocol": "TCP"}] if channel_tls == ISTIO_AMBIENT else []


def probe_sources(channel_tls: str) -> list[dict[str, Any]]:
    """Where the kubelet's probes come from when the mesh rewrites their source."""
    return [{"ip_block": {"cidr": AMBIENT_PROBE_SOURCE}}] if channel_tls == ISTIO_AMBIENT else []


def namespace_labels(channel_tls: str) -> dict[str, str]:
    """What enrols a namespace's pods in the mesh (the stack's namespaces are both enrolled)."""
    return dict(AMBIENT_NAMESPACE_LABELS) if channel_tls == ISTIO_AMBIENT else {}
