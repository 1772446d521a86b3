"""Bots take no traffic and reach DNS, their dispatcher and the public internet only; the dispatcher takes
traffic from the Ingress controller and its bots only."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.k8s.api_endpoint import api_server_address
from stacks.tools.mocks import Deployed, Run, is_secret, run_program, unwrap
from tests.infra.conftest import config_for
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, spec
from tests.infra.k8s.test_store import SECRETS as STORE_SECRETS

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def policy(run: Run, name: str) -> dict[str, Any]:
    (found,) = [unwrap(r.inputs) for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"] == name]
    return found


def test_bots_take_no_ingress(k8s: Run) -> None:
    bots = policy(k8s, "voicefleet-bots")
    assert bots["metadata"]["namespace"] == "voicefleet-bots"
    assert bots["spec"]["podSelector"] == {}  # every pod there, a warm one not yet labelled too
    assert "Ingress" in bots["spec"]["policyTypes"] and not bots["spec"].get("ingress")


def test_bots_reach_dns_their_dispatchers_channel_port_and_the_public_internet_only(k8s: Run) -> None:
    bots = policy(k8s, "voicefleet-bots")
    assert "Egress" in bots["spec"]["policyTypes"]
    dns, channel, internet = bots["spec"]["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": app}}} for app in ("kube-dns", "node-local-dns")]
    dispatcher = spec(k8s.one("kubernetes:apps/v1:Deployment"))["selector"]
    assert channel == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "voicefleet"}},
                               "podSelector": dispatcher}], "ports": [{"port": 8081, "protocol": "TCP"}]}
    (block,) = internet["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0" and "ports" not in internet
    excluded = [ipaddress.ip_network(cidr) for cidr in block["ipBlock"]["except"]]
    for address in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.10", "127.0.0.1",
                    "168.63.129.16", "0.0.0.1", "198.18.0.1", "240.0.0.1"):
        assert any(ipaddress.ip_address(address) in network for network in excluded), address
    assert not any(ipaddress.ip_address("1.1.1.1") in network for network in excluded)


def test_the_dispatcher_takes_the_ingress_controller_on_its_public_port_and_its_bots_on_the_channel_port(
        k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sIngressNamespace="traefik")
    dispatcher = policy(run, "voicefleet-dispatcher")
    assert dispatcher["metadata"]["namespace"] == "voicefleet"
    assert dispatcher["spec"]["policyTypes"] == ["Ingress"]
    assert dispatcher["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}],
         "ports": [{"port": 8080, "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "voicefleet-bots"}},
                   "podSelector": {"matchLabels": {"voicefleet.io/app": "bot"}}}],
         "ports": [{"port": 8081, "protocol": "TCP"}]}]


def test_ingress_sources_are_clients_the_dispatcher_takes_on_its_public_port_only(k8s_stack: K8sRunner) -> None:
    """A cloud load balancer sends to the pods from its own addresses, not from the controller's namespace."""
    run = k8s_stack(k8sIngressClass="gce", k8sIngressSources='["130.211.0.0/22", "35.191.0.0/16"]')
    public, channel = policy(run, "voicefleet-dispatcher")["spec"]["ingress"]
    assert public == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                               {"ipBlock": {"cidr": "130.211.0.0/22"}}, {"ipBlock": {"cidr": "35.191.0.0/16"}}],
                      "ports": [{"port": 8080, "protocol": "TCP"}]}
    assert channel["ports"] == [{"port": 8081, "protocol": "TCP"}] and "ipBlock" not in str(channel)


@pytest.mark.parametrize(("ingress_class", "names"), [
    ("gce", "130.211.0.0/22 and 35.191.0.0/16"), ("gce-internal", "proxy-only subnet"), ("alb", "VPC's CIDR"),
    ("azure-application-gateway", "subnet's CIDR")])
def test_a_cloud_load_balancers_class_without_its_sources_is_refused_naming_its_ranges(
        k8s_stack: K8sRunner, ingress_class: str, names: str) -> None:
    with pytest.raises(SettingsError) as refused:
        k8s_stack(k8sIngressClass=ingress_class)
    message = str(refused.value)
    assert "voicefleet:k8sIngressSources is required with k8sIngressClass " + ingress_class in message
    assert names in message and "would drop every request" in message


@pytest.mark.parametrize("value", ['["35.191.0.1/16"]', '["not-a-range"]'])
def test_an_ingress_source_that_is_not_a_range_is_refused(k8s_stack: K8sRunner, value: str) -> None:
    with pytest.raises(SettingsError, match="k8sIngressSources must list CIDR ranges"):
        k8s_stack(k8sIngressSources=value)


def left_out(run: Run) -> list[str]:
    (registration,) = [r for r in run.of_type(POLICY) if unwrap(r.inputs)["metadata"]["name"] == "voicefleet-bots"]
    internet = registration.inputs["spec"]["egress"][2]
    assert not is_secret(internet) and not is_secret(internet["to"][0]["ipBlock"]["except"])  # reviewable in a diff
    return list(unwrap(internet)["to"][0]["ipBlock"]["except"])


def kubeconfig(server: str, *, current: str = "prod") -> str:
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: {current}\n"
            "clusters:\n- name: staging\n  cluster: {server: 'https://34.0.0.9'}\n"
            f"- name: prod\n  cluster: {{server: '{server}'}}\n"
            "contexts:\n- name: prod\n  context: {cluster: prod, user: u}\n"
            "- name: staging\n  context: {cluster: staging, user: u}\n"
            "users:\n- name: u\n  user: {token: SENTINEL-kubeconfig-token-4d1c}\n")


def test_the_api_servers_public_address_from_the_kubeconfig_is_left_out_of_the_bots_internet(
        k8s_stack: K8sRunner) -> None:
    run = k8s_stack(secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig("https://35.204.1.2:443")})
    assert "35.204.1.2/32" in left_out(run) and "34.0.0.9/32" not in left_out(run)
    staging = k8s_stack(k8sContext="staging",
                        secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig("https://35.204.1.2")})
    assert "34.0.0.9/32" in left_out(staging) and "35.204.1.2/32" not in left_out(staging)


@pytest.mark.parametrize("config", [
    kubeconfig("https://abc.gr7.eu-west-1.eks.amazonaws.com"),  # a name: its addresses change
    kubeconfig("https://[2600:1f18::1]:443"), kubeconfig("not a url"), "- a list", ": not yaml :", ""])
def test_a_server_named_by_name_or_unreadable_adds_nothing(config: str) -> None:
    assert api_server_address(config, None) is None


def test_listed_ranges_are_left_out_once_and_dns_is_asked_where_the_cluster_answers_it(
        k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sBotEgressExcept='["203.0.113.7", "198.51.100.0/24", "10.0.0.0/8", "35.204.1.2/32"]',
                    k8sDnsAddresses='["169.254.20.10", "10.96.0.10", "169.254.20.10"]',
                    secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig("35.204.1.2:443")})
    excluded = left_out(run)
    assert {"203.0.113.7/32", "198.51.100.0/24"} <= set(excluded)
    assert excluded.count("10.0.0.0/8") == 1 and excluded.count("35.204.1.2/32") == 1  # `host:port` is https too
    dns = policy(run, "voicefleet-bots")["spec"]["egress"][0]
    kube_system = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    assert dns["to"] == [{**kube_system, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
                         {**kube_system, "podSelector": {"matchLabels": {"k8s-app": "node-local-dns"}}},
                         {"ipBlock": {"cidr": "169.254.20.10/32"}}, {"ipBlock": {"cidr": "10.96.0.10/32"}}]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


@pytest.mark.parametrize(("server", "listed", "warned"), [
    ("https://abc.gr7.eu-west-1.eks.amazonaws.com", "[]", True), ("https://10.20.0.2", "[]", True),
    ("https://[2001:db8::1]:443", "[]", True), ("https://35.204.1.3", "[]", False),
    ("https://127.0.0.1:6443", "[]", False),  # kind, minikube: no public endpoint to name
    ("https://abc.gr7.eu-west-1.eks.amazonaws.com", '["52.18.0.7"]', False)])  # already listed
def test_an_api_server_the_stack_cannot_leave_out_is_named_in_a_warning_until_something_is_listed(
        k8s_stack: K8sRunner, monkeypatch: pytest.MonkeyPatch, server: str, listed: str, warned: bool) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    k8s_stack(k8sBotEgressExcept=listed, k8sDnsAddresses=f'["10.96.0.{len(server)}"]',  # runs, not cached
              secrets={**ALL_SECRETS, "voicefleet:k8sKubeconfig": kubeconfig(server)})
    about = [w for w in warnings if "k8sBotEgressExcept" in w]
    assert (len(about) == 1 and "not by a public IPv4 address" in about[0]) if warned else not about, warnings


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("k8sBotEgressExcept", '["2001:db8::/32"]', "IPv4"), ("k8sBotEgressExcept", '["0.0.0.0/0"]', "/8 or narrower"),
    ("k8sBotEgressExcept", '["35.204.1.2/3"]', "no bits past the prefix"),  # a typo for /32
    ("k8sBotEgressExcept", '["not-an-ip"]', "IPv4"), ("k8sDnsAddresses", '["169.254.20.10/32"]', "IPv4 addresses")])
def test_a_range_the_api_server_would_refuse_or_a_typo_fails_the_preview(
        k8s_stack: K8sRunner, key: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        k8s_stack(**{key: value})


def test_under_istio_ambient_the_mesh_tunnel_and_probes_are_let_through_and_both_namespaces_enrolled(
        k8s_stack: K8sRunner) -> None:
    """Ambient carries pod traffic as HBONE to the destination pod's port 15008, and NetworkPolicy sees that port;
    kubelet probes reach an ambient pod from 169.254.7.127 (Istio, "Ambient and Kubernetes NetworkPolicy")."""
    run = k8s_stack(k8sChannelTls="istio-ambient", k8sStore="in-cluster", secrets=STORE_SECRETS)
    hbone = {"port": 15008, "protocol": "TCP"}
    (_, channel, _) = policy(run, "voicefleet-bots")["spec"]["egress"]
    assert channel["ports"] == [{"port": 8081, "protocol": "TCP"}, hbone]
    public, bots, probes = policy(run, "voicefleet-dispatcher")["spec"]["ingress"]
    assert public["ports"] == [{"port": 8080, "protocol": "TCP"}, hbone]
    assert bots["ports"] == [{"port": 8081, "protocol": "TCP"}, hbone]
    assert probes == {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}], "ports": [{"port": 8080, "protocol": "TCP"}]}
    store_ingress = policy(run, "voicefleet-store")["spec"]["ingress"]
    assert hbone in store_ingress[0]["ports"] and store_ingress[1]["from"] == probes["from"]
    enrolments = run.of_type("kubernetes:core/v1:NamespacePatch")
    assert sorted(unwrap(patch.inputs)["metadata"]["name"] for patch in enrolments) == ["voicefleet", "voicefleet-bots"]
    for patch in enrolments:
        assert unwrap(patch.inputs)["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}


def test_the_namespaces_join_the_mesh_only_once_every_policy_lets_its_tunnel_and_probes_through(
        k8s_stack: K8sRunner) -> None:
    """A label written with the namespaces, before the policies they are inputs of, enrols the running pods
    in ambient while their policies still drop HBONE and the rewritten probes."""
    run = k8s_stack(k8sChannelTls="istio-ambient", k8sStore="in-cluster", secrets=STORE_SECRETS)
    for namespace in run.of_type("kubernetes:core/v1:Namespace"):
        assert "istio.io/dataplane-mode" not in unwrap(namespace.inputs)["metadata"]["labels"]
    policies = {r.urn for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert len(policies) == 3  # the bots', the dispatcher's, the store's
    enrolments = run.of_type("kubernetes:core/v1:NamespacePatch")
    assert enrolments and all(policies <= set(patch.dependencies) for patch in enrolments)


@pytest.mark.parametrize("channel_tls", ["stack", "cilium"])
def test_without_istio_ambient_no_tunnel_port_or_probe_source_is_opened(k8s_stack: K8sRunner, channel_tls: str) -> None:
    run = k8s_stack(k8sChannelTls=channel_tls)
    dispatcher, bots = policy(run, "voicefleet-dispatcher")["spec"], policy(run, "voicefleet-bots")["spec"]
    rules = (*dispatcher["ingress"], *bots["egress"])
    opened = [port["port"] for rule in rules for port in rule.get("ports", [])]
    assert 15008 not in opened and "169.254.7.127" not in str(policy(run, "voicefleet-dispatcher"))
    for namespace in run.of_type("kubernetes:core/v1:Namespace"):
        assert "istio.io/dataplane-mode" not in unwrap(namespace.inputs)["metadata"]["labels"]


def test_leaving_istio_ambient_keeps_its_tunnel_and_probes_open_until_the_label_is_gone() -> None:
    """The label's removal is deleted at the end of the `up`, after the policies' updates: they keep the mesh's
    port and probe source that `up`, and close them in the next."""
    deployed, secrets = Deployed(), STORE_SECRETS

    def up(**overrides: str) -> Run:
        run = run_program(config_for("k8s", {"k8sStore": "in-cluster", **overrides}, secrets), list(secrets),
                          stack="k8s-test", deployed=deployed)
        deployed.record(run)
        return run

    up(k8sChannelTls="istio-ambient")
    for run, kept in ((up(k8sChannelTls="cilium"), True), (up(k8sChannelTls="cilium"), False)):
        assert not run.of_type("kubernetes:core/v1:NamespacePatch")
        for name in ("voicefleet-bots", "voicefleet-dispatcher", "voicefleet-store"):
            assert ("15008" in str(policy(run, name))) is kept, name
        assert ("169.254.7.127" in str(policy(run, "voicefleet-dispatcher"))) is kept
