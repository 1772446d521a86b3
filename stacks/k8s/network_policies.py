"""What may reach the bots and the dispatcher, and where the bots may go.

Bots take no ingress (they dial out: docs/architecture.md). Their egress is DNS (the cluster's
resolver in kube-system), the dispatcher's channel (its pods' channel port: a policy sees a Service's
traffic after it is translated to a pod), with `k8sModelImage` the model service's pods on its port, and
the public internet, which leaves out every private, shared,
link-local (cloud metadata) and loopback range, so a bot reaches nothing else in the cluster or its
network; nor the API server's public address (stacks/k8s/api_endpoint.py) or the ranges the stack
lists in `k8sBotEgressExcept`. NodeLocal DNSCache's pods, and the addresses in `k8sDnsAddresses`,
answer them on port 53 as well.
The dispatcher takes traffic from the Ingress controller's namespace (and `k8sIngressSources`, a cloud
load balancer's or the nodes' ranges: stacks/config/k8s_ingress.py) on its public port only, and
from its bots on its channel port only (BOT_CHANNEL_PORT); its own egress (the API server, the store,
Daily) is not limited here. Under Istio's ambient mode each of those also takes the mesh's tunnel port
and the kubelet's probes from the mesh's address (stacks/k8s/mesh.py).

A cluster whose network plugin does not enforce NetworkPolicy accepts these and enforces nothing
(docs/kubernetes.md, "A stack for your cluster").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes.networking as k8s_networking

from dispatcher.machines.k8s.pods import APP, LABEL_APP
from stacks.config.k8s import STACK_TLS
from stacks.k8s.mesh import probe_sources, tunnel_ports
from stacks.k8s.namespaces import NAME_LABEL
from stacks.shared import contract

# Not the public internet: RFC 1918, shared address space (RFC 6598, often pod ranges), link-local
# (169.254.169.254: cloud metadata), loopback, the IETF's own (RFC 6890: "this network", benchmarking,
# reserved), and Azure's host endpoint, a public address every Azure VM reaches (WireServer: an AKS
# node's bootstrap secrets were read through it).
PRIVATE_RANGES = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                  "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "240.0.0.0/4", "168.63.129.16/32")
DNS_NAMESPACE, DNS_LABELS = "kube-system", {"k8s-app": "kube-dns"}  # CoreDNS keeps kube-dns's label
# NodeLocal DNSCache's DaemonSet (the add-on's nodelocaldns.yaml); a policy plugin that redirects DNS to
# its pods (Cilium's Local Redirect Policy) sees them as the destination.
NODE_LOCAL_DNS_LABELS = {"k8s-app": "node-local-dns"}
BOT_SELECTOR = {LABEL_APP: APP}
Spec = k8s_networking.v1.NetworkPolicySpecArgsDict


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    dispatcher_namespace: pulumi.Input[str]
    bot_namespace: pulumi.Input[str]
    ingress_namespace: str
    dispatcher_selector: dict[str, str]
    labels: dict[str, str]
    egress_except: pulumi.Input[Sequence[str]] = ()  # beyond PRIVATE_RANGES
    dns_addresses: Sequence[str] = ()  # where else the bots' resolver is: NodeLocal DNSCache's, Cloud DNS's
    ingress_sources: Sequence[str] = ()  # CIDRs clients also come from: a cloud load balancer's, the nodes'
    # a mesh's tunnel port and probe source are let through (stacks/k8s/mesh.py kept_mesh)
    channel_tls: pulumi.Input[str] = STACK_TLS
    model: ModelPods | None = None  # the shared model service's pods, when the stack runs one (model_service.py)


@dataclass(frozen=True)
class ModelPods:
    """Where the bots stream to: the model service's pods, in a namespace of their own, on its port."""

    namespace: str
    selector: dict[str, str]
    port: int


def namespace(name: pulumi.Input[str]) -> dict[str, Any]:
    return {"match_labels": {NAME_LABEL: name}}


def bot_egress(args: NetworkPoliciesArgs) -> list[dict[str, Any]]:
    """The bots' egress rules, in the API's own (camelCase) field names: an agent-sandbox template's
    `networkPolicy` (an untyped custom resource field) carries them as the bots' NetworkPolicy does."""
    dns_ports = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    resolvers: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchLabels": {NAME_LABEL: DNS_NAMESPACE}}, "podSelector": {"matchLabels": labels}}
        for labels in (DNS_LABELS, NODE_LOCAL_DNS_LABELS)]
    resolvers += [{"ipBlock": {"cidr": f"{address}/32"}} for address in args.dns_addresses]
    dispatcher_pods = {"namespaceSelector": {"matchLabels": {NAME_LABEL: args.dispatcher_namespace}},
                       "podSelector": {"matchLabels": args.dispatcher_selector}}
    left_out = pulumi.Output.from_input(args.egress_except).apply(
        lambda extra: [*PRIVATE_RANGES, *(cidr for cidr in extra if cidr not in PRIVATE_RANGES)])
    return [
        {"to": resolvers, "ports": dns_ports},
        {"to": [dispatcher_pods], "ports": pulumi.Output.from_input(args.channel_tls).apply(lambda mesh: [
            {"port": contract.DISPATCHER_CHANNEL_PORT, "protocol": "TCP"}, *tunnel_ports(mesh)])},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": left_out}}]},
        # the private ranges left out above hold the model's pods: they are let through on its port alone (and
        # the mesh's tunnel port: its namespace is enrolled too)
        *([model_egress(model, args.channel_tls)] if (model := args.model) is not None else []),
    ]


def model_egress(model: ModelPods, channel_tls: pulumi.Input[str]) -> dict[str, Any]:
    return {"to": [{"namespaceSelector": {"matchLabels": {NAME_LABEL: model.namespace}},
                    "podSelector": {"matchLabels": model.selector}}],
            "ports": pulumi.Output.from_input(channel_tls).apply(lambda mesh: [
                {"port": model.port, "protocol": "TCP"}, *tunnel_ports(mesh)])}


def url_host(url: str) -> str:
    """The host of a `turn:`/`turns:` URL (stacks/config/turn.py checks its form): `host[:port][?…]`."""
    rest = url.split(":", 1)[1].split("?", 1)[0]
    return rest[1:rest.index("]")] if rest.startswith("[") else rest.split(":", 1)[0]


def unreachable_urls(urls: Sequence[str], egress_except: Sequence[str]) -> list[str]:
    """The URLs among `urls` whose host is an address the bots' egress leaves out: a private range, one
    of `egress_except`, or any IPv6 address (the bots' IPv6 egress is closed). A DNS name cannot be
    checked before the bots resolve it."""
    closed = [ipaddress.ip_network(cidr) for cidr in (*PRIVATE_RANGES, *egress_except)]
    found = []
    for url in urls:
        try:
            address = ipaddress.ip_address(url_host(url))
        except ValueError:
            continue  # a name
        if address.version == 6 or any(address in network for network in closed):
            found.append(url)
    return found


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:NetworkPolicies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public_port = {"port": contract.DISPATCHER_PORT, "protocol": "TCP"}
        channel_port = {"port": contract.DISPATCHER_CHANNEL_PORT, "protocol": "TCP"}
        bots = k8s_networking.v1.NetworkPolicy(f"{name}-bots", metadata={
            "name": "voicefleet-bots", "namespace": args.bot_namespace, "labels": args.labels}, spec=cast(Spec, {
            # Every pod of the bots' namespace, labelled or not: an agent-sandbox pod has the bot label
            # only if the operator's SandboxTemplate gives it, and must be held by this policy regardless.
            "pod_selector": {},
            "policy_types": ["Ingress", "Egress"],
            "ingress": [],
            "egress": bot_egress(args),
        }), opts=child)
        dispatcher = k8s_networking.v1.NetworkPolicy(f"{name}-dispatcher", metadata={
            "name": "voicefleet-dispatcher", "namespace": args.dispatcher_namespace, "labels": args.labels},
            spec=cast(Spec, {
            "pod_selector": {"match_labels": args.dispatcher_selector},
            "policy_types": ["Ingress"],
            "ingress": pulumi.Output.from_input(args.channel_tls).apply(lambda mesh: pulumi.Output.from_input([
                {"from": [{"namespace_selector": namespace(args.ingress_namespace)},
                          *({"ip_block": {"cidr": cidr}} for cidr in args.ingress_sources)],
                 "ports": [public_port, *tunnel_ports(mesh)]},  # a meshed peer's traffic arrives on the mesh's port
                {"from": [{"namespace_selector": namespace(args.bot_namespace),
                           "pod_selector": {"match_labels": BOT_SELECTOR}}],
                 "ports": [channel_port, *tunnel_ports(mesh)]},
                *([{"from": probes, "ports": [public_port]}] if (probes := probe_sources(mesh)) else [])])),
        }), opts=child)
        # What the dispatcher's Deployment depends on: created before it, deleted after its pods are gone.
        self.policies: tuple[pulumi.Resource, ...] = (bots, dispatcher)
        self.register_outputs({})
