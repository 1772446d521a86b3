"""Where the dispatcher's clients come from on Kubernetes: `k8sIngressSources`, and the classes that need it.

The dispatcher's NetworkPolicy takes its public port from the pods of `k8sIngressNamespace` (an
in-cluster proxy: ingress-nginx, Traefik, …). A cloud load balancer that sends straight to pod
addresses does not come from such pods, nor does a controller on the host network (it sends from the
node's address), so the policy would drop every request while the pods look healthy: their ranges are
`k8sIngressSources`, and the classes known to work that way are refused without them
(docs/kubernetes.md, "Its Ingress").
"""

from __future__ import annotations

import ipaddress

from stacks.config.reader import Reader

KEY = "k8sIngressSources"
GOOGLE_FRONT_ENDS = "130.211.0.0/22 and 35.191.0.0/16"
# Ingress class → where its load balancer sends from (each provider's documented ranges).
CLOUD_LOAD_BALANCERS = {
    "gce": f"GKE's external load balancer sends from Google's front ends, {GOOGLE_FRONT_ENDS}",
    "gce-internal": f"GKE's internal load balancer sends from the region's proxy-only subnet (its CIDR), and "
                    f"its health checks from {GOOGLE_FRONT_ENDS}",
    "alb": "the AWS Load Balancer Controller's ALB sends from its own addresses in the VPC: the VPC's CIDR "
           "(or its subnets')",
    "azure-application-gateway": "Application Gateway sends from its own subnet: that subnet's CIDR",
}


def ingress_sources(cfg: Reader, ingress_class: str) -> tuple[str, ...]:
    found = []
    for value in cfg.string_list(KEY):
        try:
            found.append(str(ipaddress.ip_network(value)))  # strict: a typo's host bits would widen it silently
        except ValueError:
            raise cfg.fail(KEY, f"must list CIDR ranges like 35.191.0.0/16 or 10.0.0.0/16, no bits past the "
                                f"prefix (got {value!r})") from None
    if not found and ingress_class in CLOUD_LOAD_BALANCERS:
        raise cfg.fail(KEY, f"is required with k8sIngressClass {ingress_class}: {CLOUD_LOAD_BALANCERS[ingress_class]}, "
                            "not from pods of k8sIngressNamespace, so the dispatcher's NetworkPolicy would drop every "
                            f"request. List those ranges: pulumi config set --path '{KEY}[0]' <CIDR> (and [1], …) "
                            "(docs/kubernetes.md, \"Its Ingress\")")
    return tuple(dict.fromkeys(found))
