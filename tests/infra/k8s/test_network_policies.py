"""Bots take no traffic and reach DNS, their dispatcher and the public internet only; the dispatcher takes
traffic from the Ingress controller and its bots only."""

from __future__ import annotations

import ipaddress
from typing import Any

from stacks.tools.mocks import Run, unwrap
from tests.infra.k8s.conftest import K8sRunner, spec

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def policy(run: Run, name: str) -> dict[str, Any]:
    (found,) = [unwrap(r.inputs) for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"] == name]
    return found


def test_bots_take_no_ingress(k8s: Run) -> None:
    bots = policy(k8s, "voicefleet-bots")
    assert bots["metadata"]["namespace"] == "voicefleet-bots"
    assert bots["spec"]["podSelector"] == {}  # every pod there, a warm one not yet labelled too
    assert "Ingress" in bots["spec"]["policyTypes"] and not bots["spec"].get("ingress")


def test_bots_reach_dns_their_dispatchers_port_and_the_public_internet_only(k8s: Run) -> None:
    bots = policy(k8s, "voicefleet-bots")
    assert "Egress" in bots["spec"]["policyTypes"]
    dns, channel, internet = bots["spec"]["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    dispatcher = spec(k8s.one("kubernetes:apps/v1:Deployment"))["selector"]
    assert channel == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "voicefleet"}},
                               "podSelector": dispatcher}], "ports": [{"port": 8080, "protocol": "TCP"}]}
    (block,) = internet["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0" and "ports" not in internet
    excluded = [ipaddress.ip_network(cidr) for cidr in block["ipBlock"]["except"]]
    for address in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.10", "127.0.0.1",
                    "168.63.129.16", "0.0.0.1", "198.18.0.1", "240.0.0.1"):
        assert any(ipaddress.ip_address(address) in network for network in excluded), address
    assert not any(ipaddress.ip_address("1.1.1.1") in network for network in excluded)


def test_the_dispatcher_takes_traffic_from_the_ingress_controller_and_its_bots_on_its_port(
        k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sIngressNamespace="traefik")
    dispatcher = policy(run, "voicefleet-dispatcher")
    assert dispatcher["metadata"]["namespace"] == "voicefleet"
    assert dispatcher["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = dispatcher["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "voicefleet-bots"}},
         "podSelector": {"matchLabels": {"voicefleet.io/app": "bot"}}}]
