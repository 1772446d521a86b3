"""The SIP edge a GCP stack runs (stacks/gcp/sip_edge.py): its exact firewall, a VM that reads only its own
secrets by reference (none in its boot script) with a service account of its own and no project-wide
grant, the dispatcher told the edge's control API on its internal address and let into the edge's
network, the trunk told the static external address, which a protected stack keeps, and a file the
edge's own loader takes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from stacks.gcp.egress_network import EGRESS_CIDR
from stacks.gcp.sip_edge import EDGE_CIDR, TRIES
from stacks.shared import sip_edge_host
from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import (
    API_KEY,
    DIGEST,
    EDGE,
    EDGE_SECRETS,
    PBX,
    TWILIO_MEDIA,
    TWILIO_SIGNALLING,
    assert_nft_takes,
    boot_secrets,
)
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.gcp.test_stack import dispatcher_container

# What the edge's host reads: never SIP_EDGE_SECRET.
NAMES = ("SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_CONTROL_KEY", "SIP_EDGE_CREDENTIAL", "SIP_EDGE_DIGEST_TWILIO")
CREDENTIAL = EdgeSecret("x" * 48).edge_credential("http://10.0.0.9:5080")  # a stand-in of the right shape

NAME = "voicefleet-gcp-test-sip-edge"
INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
ACCOUNT = "vf-gcp-test-sip@vf-test.iam.gserviceaccount.com"
MEMBER = f"serviceAccount:{ACCOUNT}"
EGRESS_NETWORK = "projects/vf-test/voicefleet-gcp-test-egress"  # the mocks' id of the egress network


def run_cloud_edge(stack: StackRunner, cloud: str, edge: dict[str, Any] | None = None,
                   secrets: dict[str, str] | None = None, **overrides: Any) -> Run:
    """A stack of `cloud` with the edge set (EDGE by default): a cloud whose dispatcher URL is HTTPS already."""
    return stack(cloud, secrets={**EDGE_SECRETS, **(secrets or {})},
                 **{"sipEdge": json.dumps(EDGE if edge is None else edge), **overrides})


def run_gcp_edge(stack: StackRunner, edge: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
                 **overrides: Any) -> Run:
    return run_cloud_edge(stack, "gcp", edge, secrets, **overrides)


@pytest.fixture
def edge_run(stack: StackRunner) -> Run:
    return run_gcp_edge(stack)


def _startup(run: Run) -> str:
    return str(unwrap(run.one(INSTANCE, NAME).inputs)["metadataStartupScript"])


def _firewall(run: Run) -> dict[str, dict[str, Any]]:
    return {r.name.removeprefix(f"{NAME}-"): unwrap(r.inputs) for r in run.of_type(FIREWALL)
            if r.name.startswith(f"{NAME}-")}


def test_sip_and_rtp_come_from_the_trunks_sources_only_control_from_the_dispatchers_subnetwork(edge_run: Run) -> None:
    rules = _firewall(edge_run)
    assert sorted(rules) == ["control", "deny-out", "https-out", "rtp", "sip", "udp-out"]
    # Every rule applies to the edge's own service account, never to a tag (or to every VM of the network).
    assert all(rule["targetServiceAccounts"] == [ACCOUNT] and "targetTags" not in rule for rule in rules.values())
    ingress = {name: (rule["allows"], rule["sourceRanges"]) for name, rule in rules.items()
               if rule["direction"] == "INGRESS"}
    assert ingress == {"sip": ([{"protocol": "udp", "ports": ["5060"]}], sorted(TWILIO_SIGNALLING)),
                       "rtp": ([{"protocol": "udp", "ports": ["40000-40399"]}], [TWILIO_MEDIA]),
                       # Cloud Run's Direct VPC egress sends from anywhere in its subnetwork, which holds no VM.
                       "control": ([{"protocol": "tcp", "ports": ["5080"]}], [EGRESS_CIDR])}
    assert EGRESS_CIDR != EDGE_CIDR
    assert rules["udp-out"]["destinationRanges"] == sorted({*TWILIO_SIGNALLING, TWILIO_MEDIA})
    assert rules["https-out"]["allows"] == [{"protocol": "tcp", "ports": ["443"]}]
    deny = rules["deny-out"]
    assert deny["denies"] == [{"protocol": "all"}] and deny["destinationRanges"] == ["0.0.0.0/0"]
    assert deny["priority"] > max(rule["priority"] for rule in rules.values() if rule.get("allows"))
    # The edge lives in the dispatcher's egress network, in a subnetwork of its own.
    (subnetwork,) = [r for r in edge_run.of_type("gcp:compute/subnetwork:Subnetwork") if r.name == NAME]
    assert unwrap(subnetwork.inputs)["ipCidrRange"] == EDGE_CIDR
    assert unwrap(subnetwork.inputs)["network"] == EGRESS_NETWORK
    assert {rule["network"] for rule in rules.values()} == {EGRESS_NETWORK}


def test_the_dispatcher_reaches_the_control_api_on_the_internal_address_through_its_egress_network(
        edge_run: Run) -> None:
    (service,) = edge_run.of_type("gcp:cloudrunv2/service:Service")
    access = unwrap(service.inputs)["template"]["vpcAccess"]
    assert access["networkInterfaces"] == [{"network": EGRESS_NETWORK,
                                            "subnetwork": EGRESS_NETWORK}]
    assert access["egress"] == "PRIVATE_RANGES_ONLY"  # the internet (and the edge's run.app calls) stays direct
    container = dispatcher_container(edge_run)
    env = {e["name"]: e for e in unwrap(container["envs"])}
    internal = unwrap(edge_run.one("gcp:compute/address:Address", f"{NAME}-internal").inputs)
    assert internal["addressType"] == "INTERNAL" and internal["subnetwork"] == f"projects/vf-test/{NAME}"
    instance = unwrap(edge_run.one(INSTANCE, NAME).inputs)
    (interface,) = instance["networkInterfaces"]
    assert env["SIP_EDGE_URL"]["value"] == f"http://{interface['networkIp']}:5080"
    assert "valueSource" in env["SIP_EDGE_SECRET"]  # by reference
    assert not any(name.startswith(("SIP_EDGE_API_KEY", "SIP_EDGE_DIGEST")) for name in env)
    grants = [unwrap(r.inputs) for r in edge_run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
              if r.name.endswith("sip-edge-secret-dispatcher")]
    assert len(grants) == 1


def test_an_edge_that_only_takes_calls_has_its_control_api_for_the_dispatcher_alone(stack: StackRunner) -> None:
    """No trunk places calls, yet the dispatcher's status (and transfers) ask the edge: the control port open
    to the dispatcher's egress subnetwork alone, which the dispatcher joins, told the edge and its secret."""
    run = run_gcp_edge(stack, {"enabled": True, "trunks": [PBX]},
                       secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    control = _firewall(run)["control"]
    assert (control["allows"], control["sourceRanges"]) == ([{"protocol": "tcp", "ports": ["5080"]}], [EGRESS_CIDR])
    env = {e["name"]: e for e in unwrap(dispatcher_container(run)["envs"])}
    (interface,) = unwrap(run.one(INSTANCE, NAME).inputs)["networkInterfaces"]
    assert env["SIP_EDGE_URL"]["value"] == f"http://{interface['networkIp']}:5080"
    assert "valueSource" in env["SIP_EDGE_SECRET"]  # by reference
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    assert unwrap(service.inputs)["template"]["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"  # no store, the edge
    assert ('control_port = 5080\ncontrol_secret_env = "SIP_EDGE_CONTROL_KEY"\n'
            'edge_credential_env = "SIP_EDGE_CREDENTIAL"') in _startup(run)


def test_the_vms_account_reads_the_edges_secrets_and_pulls_the_repository_and_nothing_project_wide(
        edge_run: Run) -> None:
    instance = unwrap(edge_run.one(INSTANCE, NAME).inputs)
    assert instance["serviceAccount"]["email"] == ACCOUNT  # its own, not Compute Engine's default account
    mine = [r for r in edge_run.registrations if unwrap(r.inputs).get("member") == MEMBER]
    secrets = sorted(r.name.removeprefix("voicefleet-gcp-test-").removesuffix("-sip-edge") for r in mine
                     if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember")
    # its own two credentials, never the deployment secret they are derived from
    assert secrets == ["sip-edge-api-key-team-a", "sip-edge-control-key", "sip-edge-credential",
                       "sip-edge-digest-twilio"]
    assert {unwrap(r.inputs)["role"] for r in mine if "secretIamMember" in r.type} == {
        "roles/secretmanager.secretAccessor"}
    (pull,) = [unwrap(r.inputs) for r in mine if r.type.endswith("repositoryIamMember:RepositoryIamMember")]
    assert pull["role"] == "roles/artifactregistry.reader" and pull["repository"] == "voicefleet-gcp-test"
    assert len(mine) == len(secrets) + 1  # no project, folder or organisation binding at all
    # The VM boots once its grants exist (it still retries while they propagate).
    grants = [r.urn for r in edge_run.registrations if unwrap(r.inputs).get("member") == MEMBER]
    assert set(grants) <= set(edge_run.one(INSTANCE, NAME).dependencies)


def test_the_edge_holds_credentials_derived_for_its_url_and_never_the_deployment_secret(edge_run: Run) -> None:
    made = unwrap(next(r for r in edge_run.registrations if r.name == "voicefleet-gcp-test-sip-edge-secret"
                       and r.type.endswith("SecretVersion")).inputs)["secretData"]
    stored = {r.name: unwrap(r.inputs)["secretData"] for r in edge_run.registrations
              if r.type.endswith("SecretVersion")}
    url = {e["name"]: e for e in unwrap(dispatcher_container(edge_run)["envs"])}["SIP_EDGE_URL"]["value"]
    assert EdgeSecret(made).edge_of(stored["voicefleet-gcp-test-sip-edge-credential"]) == url
    assert stored["voicefleet-gcp-test-sip-edge-control-key"] == EdgeSecret(made).control_credential(url)
    granted = [r.name for r in edge_run.registrations if unwrap(r.inputs).get("member") == MEMBER]
    assert granted and not any("sip-edge-secret" in name for name in granted)
    assert "SIP_EDGE_SECRET" not in _startup(edge_run)


def test_the_vm_is_shielded_reached_by_os_login_only_and_holds_no_secret(edge_run: Run) -> None:
    instance = unwrap(edge_run.one(INSTANCE, NAME).inputs)
    assert instance["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True,
                                                  "enableIntegrityMonitoring": True}
    assert instance["metadata"] == {"block-project-ssh-keys": "true", "enable-oslogin": "TRUE"}
    assert instance["labels"]["role"] == "sip-edge" and instance["machineType"] == "n2-standard-2"
    script = _startup(edge_run)
    made = unwrap(next(r for r in edge_run.registrations if r.name == "voicefleet-gcp-test-sip-edge-secret"
                       and r.type.endswith("SecretVersion")).inputs)["secretData"]
    for secret in (API_KEY, DIGEST, made, *SECRETS.values()):
        assert secret not in script
    assert "secretmanager.googleapis.com/v1/$1:access" in script and "--password-stdin" in script
    assert "apt-get install -y -qq --no-install-recommends podman curl ca-certificates nftables" in script
    assert "https://deb.debian.org/" in script  # so the VM needs no port 80 out


def test_the_edges_file_loads_with_the_edges_own_loader(edge_run: Run, tmp_path: Path) -> None:
    from sipedge.config import CONFIG_VARIABLE
    from sipedge.config import load as load_edge

    config = _startup(edge_run).split("<<'EDGE'\n", 1)[1].split("EDGE\n", 1)[0]
    (tmp_path / "edge.toml").write_text(config)
    environment = {**{name: "x" * 48 for name in NAMES}, "SIP_EDGE_CREDENTIAL": CREDENTIAL}
    loaded = load_edge({CONFIG_VARIABLE: str(tmp_path / "edge.toml"), **environment})
    instance = unwrap(edge_run.one(INSTANCE, NAME).inputs)
    (interface,) = instance["networkInterfaces"]
    (access,) = interface["accessConfigs"]
    assert loaded.sip_address == interface["networkIp"] and loaded.public_address == access["natIp"]
    assert loaded.dispatcher_url.startswith("https://")  # Cloud Run's own URL, under Google's certificate
    assert loaded.control_address == interface["networkIp"]  # never the public address
    outputs = unwrap(edge_run.completed[edge_run.one("voicefleet:gcp:GcpStack").urn])
    assert outputs["sipEdgeOriginationUri"] == f"sip:{access['natIp']}:5060"


def test_a_protected_stack_keeps_the_static_address_and_may_drop_the_edges_secrets(stack: StackRunner) -> None:
    run = run_gcp_edge(stack, protect="true")
    assert run.one("gcp:compute/address:Address", NAME).protect
    edge_secrets = [r for r in run.of_type("gcp:secretmanager/secret:Secret") if "sip-edge" in r.name]
    assert len(edge_secrets) == 5 and not any(r.protect for r in edge_secrets)
    instance = run.one(INSTANCE, NAME)
    assert not instance.protect and instance.delete_before_replace  # each address is one VM's at a time
    unprotected = run_gcp_edge(stack)
    assert not any(r.protect for r in unprotected.registrations if r.name.startswith(NAME))


def test_a_new_source_changes_one_rule_in_place(stack: StackRunner, edge_run: Run) -> None:
    twilio = EDGE["trunks"][0]
    after = _firewall(run_gcp_edge(stack, {**EDGE, "trunks": [{**twilio, "sources": ["3.0.0.0/30",
                                                                                   *twilio["sources"]]}]}))
    before = _firewall(edge_run)
    assert sorted(after) == sorted(before)  # no rule made or deleted
    assert after["sip"]["sourceRanges"] == ["3.0.0.0/30", *sorted(TWILIO_SIGNALLING)]
    assert {name for name in before if before[name] != after[name]} == {"sip", "udp-out"}


def test_the_edges_user_reaches_the_metadata_server_for_dns_only(edge_run: Run, tmp_path: Path) -> None:
    script = _startup(edge_run)
    rules = script.split("<<'NFT'\n", 1)[1].split("NFT\n", 1)[0]
    uid = sip_edge_host.EDGE_UID
    assert rules.index(f"meta skuid {uid} ip daddr 169.254.169.254 udp dport 53 accept") < rules.index(
        f"meta skuid {uid} ip daddr 169.254.169.254 reject")
    assert f"ExecStartPre=/usr/sbin/nft -f {sip_edge_host.FIREWALL}\n" in script
    assert_nft_takes(rules, tmp_path)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_boot_script_is_valid_bash(edge_run: Run) -> None:
    checked = subprocess.run(["bash", "-n"], input=_startup(edge_run), capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stderr


def _section(script: str, start: str, end: str) -> str:
    return script[script.index(start):script.index(end)]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_pull_the_grant_does_not_yet_allow_is_retried_then_fails_the_boot(edge_run: Run, tmp_path: Path) -> None:
    """The login and pull, as rendered, under the script's own `set -euo pipefail`, with `token` and
    podman stood in for, and `sleep` logged, not slept."""
    script = _startup(edge_run)
    pull = _section(script, "pull_image() {", "cat > /root/sipedge-build/Containerfile")
    stand_ins = [f"log={tmp_path}/log", 'sleep() { echo "slept $1" >> "$log"; }', "token() { echo t; }"]
    denied = "podman() { [ \"$1\" = login ] && cat >/dev/null; [ \"$1\" = login ] || { echo 403 >&2; return 125; }; }"
    failed = subprocess.run(["bash", "-c", "\n".join(["set -euo pipefail", *stand_ins, denied, pull,
                                                      "echo built"])],
                            capture_output=True, text=True, timeout=30, check=False)
    assert failed.returncode == 1 and "built" not in failed.stdout
    assert "the dispatcher image could not be pulled" in failed.stderr
    assert (tmp_path / "log").read_text().split("\n")[:-1] == [f"slept {2 ** n}" for n in range(1, TRIES)]
    (tmp_path / "log").unlink()
    later = (f'podman() {{ [ "$1" = login ] && {{ cat >/dev/null; return 0; }}; n=$(cat {tmp_path}/n 2>/dev/null '
             f'|| echo 0); echo $((n + 1)) > {tmp_path}/n; [ "$n" -ge 2 ]; }}')
    pulled = subprocess.run(["bash", "-c", "\n".join(["set -euo pipefail", *stand_ins, later, pull, "echo built"])],
                            capture_output=True, text=True, timeout=30, check=False)
    assert pulled.returncode == 0 and "built" in pulled.stdout, pulled.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_secret_the_boot_cannot_read_fails_it_after_the_grants_propagation(edge_run: Run, tmp_path: Path) -> None:
    failed = boot_secrets(_startup(edge_run), tmp_path, "fetch() { return 22; }")
    assert failed.returncode == 1 and "the unit is written" not in failed.stdout
    assert "SIP_EDGE_API_KEY_TEAM_A could not be read" in failed.stderr
    slept = [int(line.split()[1]) for line in (tmp_path / "log").read_text().split("\n")[:-1]]
    assert sum(slept) > 7 * 60  # IAM's documented "potentially 7 minutes"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_reboot_that_cannot_read_a_secret_leaves_the_running_edges_file_whole(edge_run: Run, tmp_path: Path) -> None:
    """Compute Engine reruns the startup script at every boot, while systemd starts the edge the first
    boot enabled: a read failing on that boot must not leave the edge a partial file to restart on."""
    script = _startup(edge_run)
    first = boot_secrets(script, tmp_path, 'fetch() { echo "first-$1"; }')
    assert first.returncode == 0, first.stderr
    booted = (tmp_path / "secrets.env").read_text()
    names = NAMES
    assert booted == "".join(f"{name}=first-{name}\n" for name in names)
    # The next boot reads the first three, then Secret Manager answers 503 for the rest of the retries.
    outage = 'fetch() { [ "$1" = SIP_EDGE_DIGEST_TWILIO ] && return 22; echo "second-$1"; }'
    rebooted = boot_secrets(script, tmp_path, outage)
    assert rebooted.returncode == 1 and "SIP_EDGE_DIGEST_TWILIO could not be read" in rebooted.stderr
    assert (tmp_path / "secrets.env").read_text() == booted
    again = boot_secrets(script, tmp_path, 'fetch() { echo "second-$1"; }')  # a boot that reads every one
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "secrets.env").read_text() == "".join(f"{name}=second-{name}\n" for name in names)


def test_a_second_up_replaces_nothing(stack: StackRunner) -> None:
    first = run_gcp_edge(stack)
    second = run_gcp_edge(stack, previous=unwrap(first.completed[first.one("voicefleet:gcp:GcpStack").urn]))
    mine = {r.urn: r.inputs for r in first.registrations if r.name.startswith(NAME)}
    assert mine and mine == {r.urn: r.inputs for r in second.registrations if r.name.startswith(NAME)}


@pytest.mark.parametrize(("edge", "said"), [
    ({**EDGE, "instanceType": "c7i.large"}, "instanceType: this gcp stack's edge has no such key; its "
                                            "host's size is machineType"),
    ({**EDGE, "machineType": "c4a-standard-2"}, "x86_64 machineType (n2-standard-2; got c4a-standard-2)"),
    ({**EDGE, "machineType": "n2.standard"}, "machineType: String should match pattern"),
])
def test_the_vms_size_is_a_machine_type_of_x86_64(stack: StackRunner, edge: dict[str, Any], said: str) -> None:
    from stacks.config.reader import SettingsError

    with pytest.raises(SettingsError) as refused:
        run_gcp_edge(stack, edge)
    assert said in str(refused.value)


def _pack_found(*rules: dict[str, Any]) -> list[str]:
    from policy import rules as pack

    _, check = pack.RESOURCE_CHECKS["sip-edge-gcp-edge-ports-only"]
    return [found for rule in rules for found in check(FIREWALL, rule)]


def test_the_policy_pack_takes_the_edges_rules_and_refuses_ssh_or_sip_from_anyone(
        stack: StackRunner, edge_run: Run) -> None:
    declared = list(_firewall(edge_run).values())
    assert _pack_found(*declared) == []
    (sip,) = [rule for rule in declared if rule["description"] == "sip edge: sip"]
    ssh = {**sip, "allows": [{"protocol": "tcp", "ports": ["22"]}], "sourceRanges": ["203.0.113.0/24"]}
    open_sip = {**sip, "sourceRanges": ["0.0.0.0/1"]}
    open_control = {**sip, "allows": [{"protocol": "tcp", "ports": ["5080"]}], "sourceRanges": ["0.0.0.0/0"]}
    everyone = {**sip, "targetServiceAccounts": []}
    found = _pack_found(ssh, open_sip, open_control, everyone)
    assert len(found) == 4 and "tcp 22-22" in found[0] and "opens SIP to 0.0.0.0/1" in found[1]
    assert "tcp 5080-5080 from 0.0.0.0/0" in found[2] and "reaches every VM" in found[3]
    # The control API from the whole private network (its bots' VMs too), not the dispatcher's subnetwork alone.
    (control,) = [rule for rule in declared if rule["description"] == "sip edge: control"]
    assert _pack_found({**control, "sourceRanges": ["10.0.0.0/8"]}) == [
        "the SIP edge's rule opens the control API (TCP 5080) to 10.0.0.0/8, wider than /23: admit the "
        "dispatcher's own subnet only"]
    anyone = run_gcp_edge(stack, {**EDGE, "trunks": [{**EDGE["trunks"][0], "sources": ["0.0.0.0/0"],
                                                       "allowAnySource": True, "mediaSources": ["0.0.0.0/0"],
                                                       "allowAnyMediaSource": True}]})
    assert _pack_found(*_firewall(anyone).values()) == []  # the trunk asked for it, and each rule says so


def test_the_edges_container_holds_no_capability_and_binds_no_privileged_port(edge_run: Run) -> None:
    """The edge runs as the image's user with every capability dropped and none to gain: it needs none,
    since every port it binds (the edge's file, as rendered) is above 1023."""
    script = _startup(edge_run)
    unit = script[script.index("<<'UNIT'\n"):script.index("\nUNIT\n")].replace("\\\n", " ")
    (run,) = [line.split()[1:] for line in unit.splitlines() if line.startswith("ExecStart=/usr/bin/podman run ")]
    assert {"--cap-drop=all", "--security-opt=no-new-privileges"} <= set(run)
    assert not any(arg.startswith(("--cap-add", "--privileged", "--user", "-u")) for arg in run)
    edge = tomllib.loads(script[script.index("<<'EDGE'\n") + len("<<'EDGE'\n"):script.index("\nEDGE\n")])
    ports = {key: value for key, value in edge.items() if key.endswith("_port")}  # SIP, RTP's first, control
    assert {"sip_port", "rtp_port", "control_port"} <= set(ports) and min(ports.values()) > 1023, ports
