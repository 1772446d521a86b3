"""The SIP edge a Kubernetes stack runs (stacks/k8s/sip_edge.py): one pod on its node's network, kept to the
team's nodes, hardened, its file and secrets in a Secret of its own that the edge's own loader takes, the
dispatcher told the control API's Service, and a stack without the nodes or their address refused."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from images.component import PROGRAM_FOLDER
from sipedge.config import load as load_edge
from sipedge.node_fence import ENDPOINTS
from sipedge.worker_place import place
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import SipEdgeSettings, capacity_note
from stacks.config.sip_edge_keys import SipEdgeKey
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE
from stacks.k8s.sip_edge_image import CONTEXT
from stacks.shared.sip_edge_host import STOP_MARGIN_SECONDS, containerfile, pjsip_requirement
from stacks.tools.mocks import Deployed, Registration, Run, run_program, unwrap
from tests.fakes.k8s_schema import schema_problems
from tests.infra.aws.test_sip_edge import API_KEY, DIGEST, EDGE, EDGE_SECRETS, PBX, TWILIO_MEDIA, TWILIO_SIGNALLING
from tests.infra.aws.test_sip_edge import assert_nft_takes as nft_takes
from tests.infra.conftest import K8S_STACK_SECRETS, StackRunner, config_for
from tests.infra.k8s.conftest import container_env, pod_spec
from tests.infra.k8s.test_images import BUILT, IMAGE, REGISTRY

NODES = {"voicefleet.io/sip-edge": "true"}
PUBLIC = "198.51.100.20"
K8S_EDGE: dict[str, Any] = {**EDGE, "nodeSelector": NODES, "nodeTaint": "voicefleet.io/sip-edge=true:NoSchedule",
                            "publicAddress": PUBLIC}
DEPLOYMENT, SECRET, SERVICE = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Secret", "kubernetes:core/v1:Service"
NAMESPACE = "voicefleet-sip-edge"  # its own, beside the dispatcher's (`voicefleet`)


def run_k8s_edge(stack: StackRunner, edge: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
                 **overrides: Any) -> Run:
    """A stack that builds its images (the edge's among them) to k8sRegistry, pushed with the deployer's login."""
    return stack("k8s", secrets={**K8S_STACK_SECRETS, **EDGE_SECRETS, **(secrets or {})},
                 sipEdge=json.dumps(K8S_EDGE if edge is None else edge), **{**BUILT, **overrides})


@pytest.fixture
def edge_run(stack: StackRunner) -> Run:
    return run_k8s_edge(stack)  # the program cache runs one configuration once


def _named(run: Run, typ: str, name: str) -> Registration:
    (found,) = [r for r in run.of_type(typ) if unwrap(r.inputs)["metadata"].get("name") == name]
    return found


def container_image(run: Run) -> str:
    (dispatcher,) = pod_spec(run)["containers"]
    return str(dispatcher["image"])


def edge_image(run: Run) -> str:
    """The edge image's reference as its build gave it: its repository under k8sRegistry, and its digest."""
    ref = str(unwrap(run.completed[run.one("voicefleet:k8s:SipEdgeImage").urn])["ref"])
    assert re.fullmatch(rf"{re.escape(REGISTRY)}/voicefleet-k8s-test-sip-edge@sha256:[0-9a-f]{{64}}", ref), ref
    return ref


def edge_build(run: Run) -> dict[str, Any]:
    """The docker-build Image of the edge's image: its inputs."""
    (image,) = [r for r in run.of_type(IMAGE) if r.name.endswith("-sip-edge")]
    return dict(unwrap(image.inputs))


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
    (fence,), (edge,) = pod["initContainers"], pod["containers"]  # no init container installs PJSIP at start
    for container in (fence, edge):
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    # 200m, 10m a worker and 20m a call (3 a worker), 256 MiB a worker; limits whole cores and the same memory
    assert edge["resources"] == {"requests": {"cpu": "270m", "memory": "256Mi"},
                                 "limits": {"cpu": "1", "memory": "256Mi"}}
    assert edge["command"] == ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
    assert fence["image"] == edge["image"] == edge_image(edge_run)  # the edge's own image, by digest
    # The root file system read-only: the edge's file from its Secret, and the scratch volume, Kamailio's TMPDIR.
    assert {m["mountPath"]: m.get("readOnly", False) for m in edge["volumeMounts"]} == {
        "/etc/sipedge": True, "/tmp": False}
    assert {"name": "TMPDIR", "value": "/tmp"} in edge["env"]
    assert not any(e["name"] == "PYTHONPATH" for e in edge["env"])  # the image's own ENV names PJSIP's folder


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
    fence = pod["initContainers"][0]  # before the edge: a failed fence stops it
    assert fence["name"] == "node-fence" and fence["command"] == ["/usr/local/bin/python", "-m", "sipedge.node_fence"]
    assert fence["image"] == edge_image(edge_run)  # the image whose sipedge/node_fence.py it runs
    # As the edge's user (the pod's), on the node's network; with nothing mounted and no secret.
    assert pod["hostNetwork"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert "runAsUser" not in fence["securityContext"] and not fence.get("volumeMounts") and not fence.get("env")


def _documented_table() -> str:
    section = (Path(__file__).parents[3] / "docs" / "sip.md").read_text().split("### On Kubernetes", 1)[1]
    return "table inet sipedge_metadata" + section.split("```\ntable inet sipedge_metadata", 1)[1].split("```", 1)[0]


def test_nftables_takes_the_documented_table(tmp_path: Path) -> None:
    nft_takes(_documented_table(), tmp_path)


def test_the_documented_table_refuses_every_endpoint_the_fence_tries_and_admits_the_fronts_own() -> None:
    table = _documented_table()
    refused = [ipaddress.ip_network(cidr.strip()) for line in table.splitlines() if "skuid 10001" in line
               and line.rstrip().endswith("reject")
               for cidr in line.split("daddr", 1)[1].split("reject", 1)[0].strip(" {}").split(",")]
    admitted = [_Admitted.of(line) for line in table.splitlines() if line.rstrip().endswith("accept")]
    for host, port in ENDPOINTS:  # the fence's tries are TCP
        assert any(ipaddress.ip_address(host) in network for network in refused), host
        assert not any(rule.admits(host, "tcp", port) for rule in admitted), (host, port)
    # The front's lines, before the refusal: every worker's SIP port and control port (64 workers at most), no more.
    assert all(any(rule.admits("127.0.0.1", "udp", port) for rule in admitted) for port in range(5061, 5125))
    assert [port for port in range(1, 65536) if any(r.admits("127.0.0.1", "tcp", port) for r in admitted)] \
        == list(range(5081, 5145))


@dataclasses.dataclass(frozen=True)
class _Admitted:
    """One of the table's accept lines: `ip daddr HOST PROTO dport LOW-HIGH [PROTO dport != PORT] accept`."""

    host: str
    protocol: str
    low: int
    high: int
    but: int | None

    @classmethod
    def of(cls, line: str) -> _Admitted:
        found = re.search(r"ip daddr (\S+) (udp|tcp) dport (\d+)-(\d+)(?: \2 dport != (\d+))? accept$", line.strip())
        assert found is not None, line
        return cls(found[1], found[2], int(found[3]), int(found[4]), None if found[5] is None else int(found[5]))

    def admits(self, host: str, protocol: str, port: int) -> bool:
        return (host, protocol) == (self.host, self.protocol) and self.low <= port <= self.high and port != self.but


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


def test_the_plans_capacity_note_names_the_nodes_and_the_workers_kamailio_fronts() -> None:
    one = capacity_note(SipEdgeSettings(SipEdgeKey.model_validate(K8S_EDGE), 40000, 400, {}, "k8s"))
    assert "1 worker(s) on one node labelled voicefleet.io/sip-edge=true hold 3 calls" in one
    assert "more take workers (3 calls each) or a second edge" in one
    many = capacity_note(SipEdgeSettings(SipEdgeKey.model_validate({**K8S_EDGE, "workers": 17}), 40000, 400, {},
                                         "k8s"))
    assert "17 worker(s) behind Kamailio on one node labelled voicefleet.io/sip-edge=true hold 51 calls" in many


@pytest.mark.parametrize("fixture", ["edge_run", "fronted_run"])
def test_the_manifests_are_valid_for_the_api_server(request: pytest.FixtureRequest, fixture: str) -> None:
    edge_run: Run = request.getfixturevalue(fixture)  # the fronted pod declares its workers' loopback ports too
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
    ({**K8S_EDGE, "instanceType": "c7i.large"}, "instanceType: this k8s stack's edge has no such key"),
])
def test_an_edge_without_its_nodes_or_their_address_is_refused_naming_the_fix(
        stack: StackRunner, edge: dict[str, Any], said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        run_k8s_edge(stack, edge)
    assert said in str(refused.value) and "docs/sip.md#on-kubernetes" in str(refused.value)


def test_an_edge_is_refused_without_a_registry_to_push_its_image_to(stack: StackRunner) -> None:
    """Images named by digest (no k8sRegistry): the stack has nowhere to push the edge's image it builds."""
    with pytest.raises(SettingsError) as refused:
        stack("k8s", secrets={**K8S_STACK_SECRETS, **EDGE_SECRETS}, sipEdge=json.dumps(K8S_EDGE))
    said = str(refused.value)
    assert "runs an image the stack builds on the dispatcher's" in said and "set k8sRegistry" in said
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


# Three workers behind Kamailio, and a PBX whose INVITEs answer the front's challenge (its inbound credential).
INBOUND = "q" * 24
FRONTED_EDGE: dict[str, Any] = {**K8S_EDGE, "workers": 3, "trunks": [
    *K8S_EDGE["trunks"], {**PBX, "inboundDigestUsername": "pbx"}]}
FRONTED_SECRETS = {"voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"pbx": INBOUND})}


@pytest.fixture
def fronted_run(stack: StackRunner) -> Run:
    return run_k8s_edge(stack, FRONTED_EDGE, secrets=FRONTED_SECRETS)


def _dispatcher_ref(run: Run) -> str:
    return str(unwrap(run.completed[run.one("voicefleet:images:Images").urn])["dispatcher"])


@pytest.mark.parametrize(("fixture", "kamailio"), [("edge_run", False), ("fronted_run", True)])
def test_the_edge_image_is_the_vm_hosts_containerfile_on_the_dispatchers_digest_with_kamailio_for_its_front(
        request: pytest.FixtureRequest, fixture: str, kamailio: bool) -> None:
    run: Run = request.getfixturevalue(fixture)
    build = edge_build(run)
    dispatcher = _dispatcher_ref(run)
    assert re.fullmatch(rf"{re.escape(REGISTRY)}/voicefleet-k8s-test-dispatcher@sha256:[0-9a-f]{{64}}", dispatcher)
    # One Containerfile, the VM hosts' own, inline: FROM the dispatcher by digest, Kamailio exactly with the front.
    assert build["dockerfile"] == {"inline": containerfile(dispatcher, kamailio=kamailio)}
    assert build["dockerfile"]["inline"].startswith(f"FROM {dispatcher}\n")
    assert ("apt-get install -y -qq --no-install-recommends kamailio" in build["dockerfile"]["inline"]) == kamailio
    assert pjsip_requirement() in build["dockerfile"]["inline"]  # the lock's version and sha256
    assert build["context"] == {"location": CONTEXT} and build["push"] is True
    assert build["platforms"] == ["linux/amd64"]
    assert build["tags"] == [f"{REGISTRY}/voicefleet-k8s-test-sip-edge:latest"]
    assert build["cacheFrom"] == [{"registry": {"ref": f"{REGISTRY}/voicefleet-k8s-test-sip-edge:buildcache"}}]
    containers = _pod(run)["containers"]  # with the front, its own container and the workers'
    assert len(containers) == (2 if kamailio else 1)
    assert {c["image"] for c in containers} == {edge_image(run)}


def test_the_edge_images_context_sends_and_hashes_nothing() -> None:
    """docker-build hashes the context's files through its .dockerignore: nothing, so only the Containerfile's text
    (an input of its own) rebuilds the image, never an edit elsewhere in the repository."""
    from images.docker_build_model import context_hash

    assert (PROGRAM_FOLDER / CONTEXT / ".dockerignore").is_file()
    assert context_hash(CONTEXT, "", {}, PROGRAM_FOLDER) == hashlib.sha256().hexdigest()  # no file at all


def test_several_workers_and_an_inbound_credential_run_behind_kamailio_on_the_ports_the_edge_binds(
        fronted_run: Run, tmp_path: Path) -> None:
    """The rendered file, loaded by the edge's own loader as the pod starts it: its front on the pod's SIP port,
    each worker on the pod's loopback port of its index, its control API on the pod's control port."""
    data = _edge_secret(fronted_run)
    assert data["SIP_EDGE_INBOUND_DIGEST_PBX"] == INBOUND
    (tmp_path / "edge.toml").write_text(data.pop("edge.toml"))
    edge = load_edge({"SIP_EDGE_CONFIG": str(tmp_path / "edge.toml"), **data, NODE_ADDRESS_VARIABLE: "10.0.3.7"})
    assert edge.front and edge.workers == 3
    edge = dataclasses.replace(edge, front_token="t" * 32)  # what the edge sets for each worker it starts
    workers, front = _pod(fronted_run)["containers"]
    bound = {p["name"]: (p.get("hostIP", "10.0.3.7"), p["containerPort"], p["protocol"])
             for p in [*workers["ports"], *front["ports"]]}
    assert [p["name"] for p in front["ports"]] == ["sip"]  # Kamailio's; the workers' container binds the rest
    assert bound == {"sip": ("10.0.3.7", edge.sip_port, "UDP"), "control": ("10.0.3.7", edge.control_port, "TCP"),
                     **{f"worker-{i}": (place(edge, i).sip_host, place(edge, i).sip_port, "UDP") for i in range(3)},
                     **{f"worker-{i}-ctl": ("127.0.0.1", edge.worker_control_port + i, "TCP") for i in range(3)}}
    # Each worker its even share of the range, the node's firewall opening the shares together.
    shares = [(place(edge, i).rtp_port, place(edge, i).rtp_port_count) for i in range(3)]
    assert shares == [(40000, 132), (40132, 132), (40264, 132)]
    outputs = unwrap(fronted_run.completed[fronted_run.one("voicefleet:k8s:K8sStack").urn])
    assert "in: UDP 40000-40395 from" in outputs["sipEdgeNodeFirewall"][1]
    assert outputs["sipEdgeNodeFirewall"][3].startswith("out: uids 10001 and 10002 (the workers' and Kamailio's) to ")
    assert outputs["sipEdgeNodeFirewall"][4] == (
        "out: uid 10002 to 127.0.0.1 admitted before that refusal on UDP 5061-5063 (Kamailio to its workers), "
        "uid 10001 on TCP 5081-5083 (the edge to its workers' control APIs), as that table's front lines do")
    # 200m, 10m a worker, 20m a call, of which 100m the front's; 256 MiB a worker, 256 MiB for the front.
    assert workers["resources"] == {"requests": {"cpu": "310m", "memory": "768Mi"},
                                    "limits": {"cpu": "1", "memory": "768Mi"}}
    assert front["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                  "limits": {"cpu": "1", "memory": "256Mi"}}


def test_many_workers_get_whole_cores_above_their_request(stack: StackRunner) -> None:
    run = run_k8s_edge(stack, {**K8S_EDGE, "workers": 17, "rtpPorts": "40000-41999"})
    container, _front = _pod(run)["containers"]  # the front's 100m of the 1390m are its own container's
    assert container["resources"]["requests"]["cpu"] == "1290m" and container["resources"]["limits"]["cpu"] == "2"


def test_the_pods_grace_outlasts_the_drain_and_the_fronts_stop(fronted_run: Run) -> None:
    """SIGTERM: the supervisor drains the workers for drainSeconds, waits on one still draining, stops the workers
    and then Kamailio (each bounded), and reads their last lines, all before the kubelet's SIGKILL."""
    from sipedge.drain import DEFAULT_DRAIN_SECONDS
    from sipedge.supervisor import READERS_SECONDS, STOP_SECONDS

    grace = _pod(fronted_run)["terminationGracePeriodSeconds"]
    assert grace == DEFAULT_DRAIN_SECONDS + STOP_MARGIN_SECONDS
    assert grace >= DEFAULT_DRAIN_SECONDS + 3 * STOP_SECONDS + READERS_SECONDS


def test_admission_admits_the_edge_image_and_the_commands_of_its_two_parts_only(fronted_run: Run) -> None:
    (policy,) = [r for r in fronted_run.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy")
                 if "own-pod-only" in unwrap(r.inputs)["metadata"]["name"]]
    (validation,) = unwrap(policy.inputs)["spec"]["validations"]
    expression = validation["expression"]
    assert f'c.image == "{edge_image(fronted_run)}"' in expression
    assert 'c.command in [["/usr/bin/tini", "--", "python", "-m", "sipedge", "workers"], ' \
           '["/usr/bin/tini", "--", "python", "-m", "sipedge", "front"], ' \
           '["/usr/local/bin/python", "-m", "sipedge.node_fence", "--admitted", "udp:5061-5063", "--admitted", ' \
           '"tcp:5081-5083"], ["/usr/local/bin/python", "-m", "sipedge.node_fence", "--admitted", "udp:5061-5063"]]' \
        in expression  # each part's fence: the workers' loopback ports its user needs
    assert "c.securityContext.runAsUser in [10001, 10002]" in expression  # the front's container its own user
