"""The SIP edge a Kubernetes stack runs (stacks/k8s/sip_edge.py): one pod on its node's network, kept to the
team's nodes, hardened, its file and secrets in a Secret of its own that the edge's own loader takes, the
dispatcher told the control API's Service, and a stack without the nodes or their address refused."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from sipedge.config import load as load_edge
from sipedge.node_fence import ENDPOINTS
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import SipEdgeSettings, capacity_note
from stacks.config.sip_edge_keys import SipEdgeKey
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE
from stacks.tools.mocks import Deployed, Registration, Run, run_program, unwrap
from tests.fakes.k8s_schema import schema_problems
from tests.infra.aws.test_sip_edge import API_KEY, DIGEST, EDGE, EDGE_SECRETS, PBX, TWILIO_MEDIA, TWILIO_SIGNALLING
from tests.infra.aws.test_sip_edge import assert_nft_takes as nft_takes
from tests.infra.conftest import K8S_STACK_SECRETS, StackRunner, config_for
from tests.infra.k8s.conftest import container_env, pod_spec

NODES = {"voicefleet.io/sip-edge": "true"}
PUBLIC = "198.51.100.20"
K8S_EDGE: dict[str, Any] = {**EDGE, "nodeSelector": NODES, "nodeTaint": "voicefleet.io/sip-edge=true:NoSchedule",
                            "publicAddress": PUBLIC}
DEPLOYMENT, SECRET, SERVICE = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Secret", "kubernetes:core/v1:Service"
NAMESPACE = "voicefleet-sip-edge"  # its own, beside the dispatcher's (`voicefleet`)


def run_k8s_edge(stack: StackRunner, edge: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
                 **overrides: Any) -> Run:
    return stack("k8s", secrets={**K8S_STACK_SECRETS, **EDGE_SECRETS, **(secrets or {})},
                 sipEdge=json.dumps(K8S_EDGE if edge is None else edge), **overrides)


@pytest.fixture
def edge_run(stack: StackRunner) -> Run:
    return run_k8s_edge(stack)  # the program cache runs one configuration once


def _named(run: Run, typ: str, name: str) -> Registration:
    (found,) = [r for r in run.of_type(typ) if unwrap(r.inputs)["metadata"].get("name") == name]
    return found


def container_image(run: Run) -> str:
    (dispatcher,) = pod_spec(run)["containers"]
    return str(dispatcher["image"])


def _pod(run: Run) -> dict[str, Any]:
    return dict(unwrap(_named(run, DEPLOYMENT, "sip-edge").inputs)["spec"]["template"]["spec"])


def _edge_secret(run: Run) -> dict[str, str]:
    (secret,) = [r for r in run.of_type(SECRET) if r.name.endswith("-sip-edge")]
    return {key: str(unwrap(value)) for key, value in unwrap(secret.inputs)["stringData"].items()}


def test_one_pod_on_its_nodes_network_only_on_the_teams_nodes_and_never_two_at_once(edge_run: Run) -> None:
    spec = unwrap(_named(edge_run, DEPLOYMENT, "sip-edge").inputs)["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {**NODES, "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "voicefleet.io/sip-edge", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]


def test_the_pod_runs_in_a_namespace_of_its_own_the_only_one_whose_pod_security_admits_host_network(
        edge_run: Run) -> None:
    labels = unwrap(_named(edge_run, "kubernetes:core/v1:Namespace", NAMESPACE).inputs)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    for typ in (DEPLOYMENT, SECRET, SERVICE, "kubernetes:core/v1:ServiceAccount"):
        assert {unwrap(r.inputs)["metadata"]["namespace"] for r in edge_run.of_type(typ) if "sip-edge" in r.name} \
            == {NAMESPACE}
    dispatcher = unwrap(_named(edge_run, "kubernetes:core/v1:Namespace", "voicefleet").inputs)["metadata"]["labels"]
    assert dispatcher["pod-security.kubernetes.io/enforce"] == "restricted"  # unchanged


def test_the_pod_runs_hardened_as_an_account_with_no_token(edge_run: Run) -> None:
    pod = _pod(edge_run)
    assert pod["automountServiceAccountToken"] is False
    account = unwrap(_named(edge_run, "kubernetes:core/v1:ServiceAccount", "sip-edge").inputs)
    assert pod["serviceAccountName"] == "sip-edge" and account["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    (fence, init), (edge,) = pod["initContainers"], pod["containers"]
    for container in (fence, init, edge):
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    for container in (init, edge):
        # 3 calls at ~2 % of a core each on 200m, a whole core's limit (a throttled media thread is heard)
        assert container["resources"] == {"requests": {"cpu": "260m", "memory": "256Mi"},
                                          "limits": {"cpu": "1", "memory": "256Mi"}}
    assert edge["command"] == ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
    assert init["image"] == edge["image"] == container_image(edge_run)  # the dispatcher's, by digest
    # PJSIP's wheel, pinned by the lock's hash, into the one volume the edge reads it from (read-only there)
    assert "--require-hashes" in init["command"][2] and "pjsua2-python==" in init["command"][2]
    assert {m["mountPath"]: m.get("readOnly", False) for m in edge["volumeMounts"]} == {
        "/etc/sipedge": True, "/opt/pjsip": True, "/tmp": False}


def _readable_by_the_pod(pod: dict[str, Any], volume: dict[str, Any]) -> bool:
    """As the kubelet writes a Secret volume: its files root's, their group the pod's fsGroup only when it
    has one (else root's), their mode the volume's defaultMode (0644 unless given)."""
    context = pod["securityContext"]
    mode = int(volume["secret"].get("defaultMode", 0o644))  # a number in JSON
    owner, group = 0, context.get("fsGroup", 0)
    groups = {context.get("runAsGroup", 0), *context.get("supplementalGroups", ()),
              *([context["fsGroup"]] if "fsGroup" in context else [])}
    if context["runAsUser"] == owner:
        return bool(mode & 0o400)
    return bool(mode & 0o040) if group in groups else bool(mode & 0o004)


def test_the_edge_can_read_its_file_as_the_pods_user(edge_run: Run) -> None:
    pod = _pod(edge_run)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert int(volume["secret"]["defaultMode"]) & 0o004 == 0  # not every user's: the pod's group's
    assert _readable_by_the_pod(pod, volume)


def test_the_edge_starts_only_after_its_user_reaches_none_of_the_nodes_credentials(edge_run: Run) -> None:
    pod = _pod(edge_run)
    fence = pod["initContainers"][0]  # before the wheel's install and the edge: a failed fence stops both
    assert fence["name"] == "node-fence" and fence["command"] == ["/usr/local/bin/python", "-m", "sipedge.node_fence"]
    assert fence["image"] == container_image(edge_run)  # the image whose sipedge/node_fence.py it runs
    # As the edge's user (the pod's), on the node's network; with nothing mounted and no secret.
    assert pod["hostNetwork"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert "runAsUser" not in fence["securityContext"] and not fence.get("volumeMounts") and not fence.get("env")


def test_the_documented_table_refuses_every_endpoint_the_fence_tries(tmp_path: Path) -> None:
    section = (Path(__file__).parents[3] / "docs" / "sip.md").read_text().split("### On Kubernetes", 1)[1]
    table = "table inet sipedge_metadata" + section.split("```\ntable inet sipedge_metadata", 1)[1].split("```", 1)[0]
    nft_takes(table, tmp_path)
    refused = [ipaddress.ip_network(cidr.strip()) for line in table.splitlines() if "skuid 10001" in line
               for cidr in line.split("daddr", 1)[1].split("reject", 1)[0].strip(" {}").split(",")]
    for host, _ in ENDPOINTS:
        assert any(ipaddress.ip_address(host) in network for network in refused), host


def test_every_secret_reaches_the_edge_by_reference_and_none_is_in_the_pod_spec(edge_run: Run) -> None:
    (edge,) = _pod(edge_run)["containers"]
    env = {entry["name"]: entry for entry in edge["env"]}
    assert env[NODE_ADDRESS_VARIABLE]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    by_reference = sorted(name for name, entry in env.items() if "secretKeyRef" in entry.get("valueFrom", {}))
    assert by_reference == ["SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_CONTROL_KEY", "SIP_EDGE_CREDENTIAL",
                            "SIP_EDGE_DIGEST_TWILIO"]
    deployment = json.dumps(unwrap(_named(edge_run, DEPLOYMENT, "sip-edge").inputs))
    assert API_KEY not in deployment and DIGEST not in deployment


def test_the_edge_holds_credentials_derived_for_its_url_and_never_the_deployment_secret(edge_run: Run) -> None:
    """The dispatcher's SIP_EDGE_SECRET is in the dispatcher's Secret alone; the edge's holds the two credentials
    derived from it for the control URL the dispatcher lists the edge by."""
    (made,) = {str(unwrap(r.inputs)["stringData"]["SIP_EDGE_SECRET"]) for r in edge_run.of_type(SECRET)
               if "SIP_EDGE_SECRET" in unwrap(r.inputs).get("stringData", {})}
    data = _edge_secret(edge_run)
    url = container_env(edge_run)["SIP_EDGE_URL"]["value"]
    assert "SIP_EDGE_SECRET" not in data and made not in json.dumps(data)
    assert EdgeSecret(made).edge_of(data["SIP_EDGE_CREDENTIAL"]) == url
    assert data["SIP_EDGE_CONTROL_KEY"] == EdgeSecret(made).control_credential(url)
    assert made not in json.dumps(unwrap(_named(edge_run, DEPLOYMENT, "sip-edge").inputs))


def test_the_secret_holds_the_rendered_file_which_the_edges_own_loader_takes(edge_run: Run, tmp_path: Path) -> None:
    data = _edge_secret(edge_run)
    assert data["SIP_EDGE_API_KEY_TEAM_A"] == API_KEY and data["SIP_EDGE_DIGEST_TWILIO"] == DIGEST
    text = data.pop("edge.toml")
    assert API_KEY not in text and DIGEST not in text and "sip_address =" not in text
    (tmp_path / "edge.toml").write_text(text)
    # As the pod starts: the Secret's keys as variables, and the node's address from the downward API.
    edge = load_edge({"SIP_EDGE_CONFIG": str(tmp_path / "edge.toml"), **data, NODE_ADDRESS_VARIABLE: "10.0.3.7"})
    assert (edge.sip_address, edge.control_address, edge.advertised) == ("10.0.3.7", "10.0.3.7", PUBLIC)
    assert edge.dispatcher_url.startswith("https://")  # its public URL, under the stack's certificate
    (trunk,) = edge.trunks
    assert trunk.api_keys == {"+14155550199": API_KEY} and trunk.digest_password == DIGEST


def test_the_dispatcher_reaches_the_control_api_through_a_service_and_knows_its_secret(edge_run: Run) -> None:
    service = unwrap(_named(edge_run, SERVICE, "sip-edge-control").inputs)["spec"]
    pod_labels = unwrap(_named(edge_run, DEPLOYMENT, "sip-edge").inputs)["spec"]["template"]["metadata"]["labels"]
    assert service["type"] == "ClusterIP" and service["selector"].items() <= pod_labels.items()
    assert service["ports"] == [{"name": "control", "port": 5080, "targetPort": "control", "protocol": "TCP"}]
    env = container_env(edge_run)
    assert env["SIP_EDGE_URL"]["value"] == f"http://sip-edge-control.{NAMESPACE}.svc:5080"
    assert "secretKeyRef" in env["SIP_EDGE_SECRET"]["valueFrom"]
    assert not any(name.startswith(("SIP_EDGE_API_KEY", "SIP_EDGE_DIGEST")) for name in env)


def test_the_dispatchers_deploy_does_not_wait_on_the_edges_service(edge_run: Run) -> None:
    service = _named(edge_run, SERVICE, "sip-edge-control")
    dispatcher = _named(edge_run, DEPLOYMENT, "dispatcher")
    assert service.urn not in dispatcher.dependencies
    # Nor does the `up` wait on the Service's endpoints: the edge's Deployment reports its pod.
    assert unwrap(service.inputs)["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_the_plan_names_the_address_and_the_firewall_the_nodes_need(edge_run: Run) -> None:
    outputs = unwrap(edge_run.completed[edge_run.one("voicefleet:k8s:K8sStack").urn])
    assert outputs["sipEdgeOriginationUri"] == f"sip:{PUBLIC}:5060"
    rules = outputs["sipEdgeNodeFirewall"]
    assert rules[0] == f"in: UDP 5060 from {', '.join(TWILIO_SIGNALLING)} only (the trunks' signalling)"
    assert rules[1] == f"in: UDP 40000-40399 from {TWILIO_MEDIA} only (the trunks' media)"
    assert "TCP 5080" in rules[2]
    assert all(address in rules[3] for address in ("169.254.169.254", "168.63.129.16", "127.0.0.0/8",
                                                  "fd00:ec2::254", "::1"))
    assert not any("k8sBotEgressExcept" in rule for rule in rules)  # the stack keeps the bots off itself


def _bots_internet_except(run: Run) -> list[str]:
    (bots,) = [r for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
               if unwrap(r.inputs)["metadata"]["name"] == "voicefleet-bots"]
    (internet,) = [to["ipBlock"] for rule in unwrap(bots.inputs)["spec"]["egress"] for to in rule["to"]
                   if to.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    return list(internet["except"])


def test_the_bots_egress_leaves_out_the_edges_public_address(edge_run: Run, stack: StackRunner) -> None:
    # The bots' egress is the public internet, the edge's address in it: no bot sends to its SIP or RTP ports.
    assert f"{PUBLIC}/32" in _bots_internet_except(edge_run)
    listed = run_k8s_edge(stack, k8sBotEgressExcept=json.dumps(["203.0.113.0/24", f"{PUBLIC}/32"]))
    excepted = _bots_internet_except(listed)
    assert "203.0.113.0/24" in excepted and excepted.count(f"{PUBLIC}/32") == 1


def test_the_plans_capacity_note_names_the_nodes_and_no_workers_the_stack_refuses() -> None:
    note = capacity_note(SipEdgeSettings(SipEdgeKey.model_validate(K8S_EDGE), 40000, 400, {}, "k8s"))
    assert "1 worker(s) on one node labelled voicefleet.io/sip-edge=true hold 3 calls" in note
    assert "more take workers" not in note and "another stack's edge on other nodes" in note


def test_the_manifests_are_valid_for_the_api_server(edge_run: Run) -> None:
    for typ, name, schema in ((DEPLOYMENT, "sip-edge", "deployment-apps-v1"),
                              (SERVICE, "sip-edge-control", "service-v1"),
                              ("kubernetes:core/v1:ServiceAccount", "sip-edge", "serviceaccount-v1")):
        body = {"apiVersion": "v1", "kind": typ.rsplit(":", 1)[1], **unwrap(_named(edge_run, typ, name).inputs)}
        body["apiVersion"] = "apps/v1" if typ == DEPLOYMENT else "v1"
        assert schema_problems(schema, body) == ([], []), name


def test_an_edge_that_only_takes_calls_has_its_control_service_and_the_dispatcher_is_told_it(
        stack: StackRunner) -> None:
    """No trunk places calls, yet the dispatcher's status (and transfers) ask the edge through its Service."""
    run = run_k8s_edge(stack, {**K8S_EDGE, "trunks": [PBX]}, secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    service = unwrap(_named(run, SERVICE, "sip-edge-control").inputs)["spec"]
    assert service["ports"] == [{"name": "control", "port": 5080, "targetPort": "control", "protocol": "TCP"}]
    (edge,) = [c for c in unwrap(_named(run, DEPLOYMENT, "sip-edge").inputs)["spec"]["template"]["spec"]["containers"]]
    assert {"name": "control", "containerPort": 5080, "protocol": "TCP"} in edge["ports"]
    env = container_env(run)
    assert env["SIP_EDGE_URL"]["value"] == f"http://sip-edge-control.{NAMESPACE}.svc:5080"
    assert "secretKeyRef" in env["SIP_EDGE_SECRET"]["valueFrom"]


@pytest.mark.parametrize(("edge", "said"), [
    ({k: v for k, v in K8S_EDGE.items() if k != "publicAddress"},
     "publicAddress: give the IPv4 address trunks send SIP and RTP to: the node's external IP"),
    ({**K8S_EDGE, "publicAddress": "sip.example.com"}, "'sip.example.com' is not an IP address"),
    ({k: v for k, v in K8S_EDGE.items() if k != "nodeSelector"},
     "nodeSelector: the edge's pod takes its node's own ports"),
    ({**K8S_EDGE, "nodeTaint": "dedicated"}, "nodeTaint: 'dedicated' is not a taint as kubectl writes it"),
    ({**K8S_EDGE, "workers": 2}, "workers: a Kubernetes stack's edge runs one worker"),
    ({**K8S_EDGE, "instanceType": "c7i.large"}, "instanceType: this k8s stack's edge has no such key"),
])
def test_an_edge_without_its_nodes_or_their_address_is_refused_naming_the_fix(
        stack: StackRunner, edge: dict[str, Any], said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        run_k8s_edge(stack, edge)
    assert said in str(refused.value) and "docs/sip.md#on-kubernetes" in str(refused.value)


def test_a_trunks_inbound_credential_is_refused_naming_an_edge_on_a_vm(stack: StackRunner) -> None:
    """The pod runs the dispatcher image, which holds no Kamailio, and only Kamailio checks the credential."""
    inbound = {**K8S_EDGE, "trunks": [{**K8S_EDGE["trunks"][0], "inboundDigestUsername": "carrier"}]}
    with pytest.raises(SettingsError) as refused:
        run_k8s_edge(stack, inbound,
                     secrets={"voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"twilio": "q" * 24})})
    said = str(refused.value)
    assert "twilio's inboundDigestUsername: a trunk's inbound digest credential is checked by the edge's Kamailio " \
           "front, which the dispatcher image the pod runs does not hold: give that trunk to an edge on a VM" in said
    assert "docs/sip.md#on-kubernetes" in said


def test_with_the_registrys_credentials_the_edges_account_pulls_with_a_copy_in_its_namespace() -> None:
    from tests.infra.k8s.test_images import ACCOUNT, BUILT, CREDENTIALS, USER, pull_secret_names

    secrets = {**K8S_STACK_SECRETS, **CREDENTIALS, **EDGE_SECRETS}
    config = config_for("k8s", {**BUILT, "k8sRegistryUsername": USER, "sipEdge": json.dumps(K8S_EDGE)}, secrets)
    run = run_program(config, list(secrets), stack="k8s-test", deployed=Deployed())
    pulls = pull_secret_names(run)
    assert sorted(pulls) == ["voicefleet", "voicefleet-bots", NAMESPACE]
    account = unwrap(_named(run, ACCOUNT, "sip-edge").inputs)
    assert account["imagePullSecrets"] == [{"name": pulls[NAMESPACE]}]


def test_a_dispatcher_namespace_too_long_for_the_edges_beside_it_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="shorten it to 54 or fewer"):
        run_k8s_edge(stack, k8sDispatcherNamespace="d" * 55)


def test_the_plan_says_a_new_pod_template_stops_the_edge(edge_run: Run, stack: StackRunner) -> None:
    """The edge's Deployment is `Recreate` (two pods never hold the node's ports): a trunk's edit (a new Secret,
    so a new pod template) stops the pod, draining its calls, before the new one starts, as a VM's replacement does."""
    from stacks.tools.preflight.replacements import host_notes

    same = run_k8s_edge(stack, dict(reversed(K8S_EDGE.items())))  # the same edge, run again (another cache key)
    assert host_notes(edge_run.registrations, same.registrations) == []
    edited = run_k8s_edge(stack, {**K8S_EDGE, "trunks": [{**EDGE["trunks"][0], "numbers": {
        **EDGE["trunks"][0]["numbers"], "+14155550198": "team-a"}}, *EDGE["trunks"][1:]]})
    (note,) = host_notes(edge_run.registrations, edited.registrations)
    assert "its pod template changes, which stops its pod before the new one starts (Recreate); this stops the SIP " \
           "edge: it refuses new calls and lets those in progress go on for up to its drainSeconds" in note
