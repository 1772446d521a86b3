"""The SIP edge an Azure stack runs (stacks/azure/sip_edge.py): its exact network security group, a VM that
reads only its own secrets by reference (none in its boot script) with an identity of its own and no
subscription-wide grant, the dispatcher told the edge's control API on its static private address, the
trunk told the static public address, which a protected stack keeps, and a file the edge's own loader
takes."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from stacks.azure.network import subnet_ranges
from stacks.azure.sip_edge import TRIES
from stacks.shared import sip_edge_host
from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import (
    API_KEY,
    DIGEST,
    EDGE,
    PBX,
    TWILIO_MEDIA,
    TWILIO_SIGNALLING,
    assert_nft_takes,
    boot_secrets,
)
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.gcp.test_sip_edge import run_cloud_edge

NAME = "voicefleet-azure-test-sip-edge"
VM = "azure-native:compute:VirtualMachine"
NSG = "azure-native:network:NetworkSecurityGroup"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"


def run_azure_edge(stack: StackRunner, edge: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
                   **overrides: Any) -> Run:
    return run_cloud_edge(stack, "azure", edge, secrets, **overrides)


@pytest.fixture
def edge_run(stack: StackRunner) -> Run:
    """The edge with the test suite's own trunk (Twilio's ranges, an outbound trunk with a digest)."""
    return run_azure_edge(stack)


def _script(run: Run) -> str:
    return base64.b64decode(unwrap(run.one(VM, NAME).inputs)["osProfile"]["customData"]).decode()


def _rules(run: Run) -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in unwrap(run.one(NSG, NAME).inputs)["securityRules"]}


def _edge_identity(run: Run) -> dict[str, Any]:
    return dict(unwrap(run.one(IDENTITY, NAME).outputs))


RANGES = subnet_ranges("10.60.0.0/16")  # the test stack's azureVnetCidr


def test_sip_and_rtp_come_from_the_trunks_sources_only_control_from_the_dispatchers_subnet(edge_run: Run) -> None:
    rules = _rules(edge_run)
    assert sorted(rules) == ["control-in", "deny-other-in", "deny-other-out", "https-out", "rtp-in", "sip-in",
                             "udp-out", "vault-out"]

    def sources(rule: dict[str, Any]) -> list[str]:
        return rule.get("sourceAddressPrefixes") or [rule["sourceAddressPrefix"]]

    inbound = {name: (rule["protocol"], rule["destinationPortRange"], sources(rule)) for name, rule in rules.items()
               if rule["direction"] == "Inbound" and rule["access"] == "Allow"}
    assert inbound == {"sip-in": ("Udp", "5060", sorted(TWILIO_SIGNALLING)),
                       "rtp-in": ("Udp", "40000-40399", [TWILIO_MEDIA]),
                       # Container Apps' calls to a private address leave from its infrastructure subnet.
                       "control-in": ("Tcp", "5080", [RANGES["dispatcher"]])}
    outbound = {name: (rule["protocol"], rule["destinationPortRange"],
                       rule.get("destinationAddressPrefixes") or [rule["destinationAddressPrefix"]])
                for name, rule in rules.items() if rule["direction"] == "Outbound" and rule["access"] == "Allow"}
    assert outbound == {"udp-out": ("Udp", "*", sorted({*TWILIO_SIGNALLING, TWILIO_MEDIA})),
                        "https-out": ("Tcp", "443", ["Internet"]),  # the service tag: not the virtual network
                        "vault-out": ("Tcp", "443", [RANGES["store"]])}
    allows = [rule["priority"] for rule in rules.values() if rule["access"] == "Allow"]
    for direction in ("Inbound", "Outbound"):
        deny = rules[f"deny-other-{direction[:-5].lower()}"]
        assert (deny["direction"], deny["access"], deny["protocol"]) == (direction, "Deny", "*")
        assert deny["sourceAddressPrefix"] == deny["destinationAddressPrefix"] == "*"
        # Above every allow of the edge's, below Azure's default rules (AllowVnetInBound and the like: 65000 up).
        assert max(allows) < deny["priority"] < 65000
    # The group is on the edge's interface, in a subnet of its own.
    nic = unwrap(edge_run.one("azure-native:network:NetworkInterface", NAME).inputs)
    assert nic["networkSecurityGroup"]["id"] == edge_run.one(NSG, NAME).outputs["id"]
    (config,) = nic["ipConfigurations"]
    assert config["subnet"]["id"].endswith("/subnets/sip") and config["privateIPAllocationMethod"] == "Static"
    assert config["privateIPAddress"] == "10.60.10.4"


def test_the_dispatcher_reaches_the_control_api_on_the_static_private_address(edge_run: Run) -> None:
    (app,) = edge_run.of_type("azure-native:app:ContainerApp")
    inputs = unwrap(app.inputs)
    (container,) = inputs["template"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SIP_EDGE_URL"]["value"] == "http://10.60.10.4:5080"
    assert env["SIP_EDGE_SECRET"]["secretRef"] == "sip-edge-secret"  # by reference, from Key Vault
    assert not any(name.startswith(("SIP_EDGE_API_KEY", "SIP_EDGE_DIGEST")) for name in env)
    dispatcher = [r for r in edge_run.of_type(ASSIGNMENT) if r.name.endswith("-dispatcher")
                  and "sip-edge" in r.name]
    assert [r.name for r in dispatcher] == ["voicefleet-azure-test-sip-edge-secret-dispatcher"]


def test_an_edge_that_only_takes_calls_has_its_control_api_for_the_dispatcher_alone(stack: StackRunner) -> None:
    """No trunk places calls, yet the dispatcher's status (and transfers) ask the edge: the control port open
    to the dispatcher's subnet alone, the dispatcher told the edge and its secret."""
    run = run_azure_edge(stack, {"enabled": True, "trunks": [PBX]},
                         secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    control = _rules(run)["control-in"]
    assert (control["protocol"], control["destinationPortRange"], control["sourceAddressPrefix"]) == (
        "Tcp", "5080", RANGES["dispatcher"])
    (app,) = run.of_type("azure-native:app:ContainerApp")
    (container,) = unwrap(app.inputs)["template"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SIP_EDGE_URL"]["value"] == "http://10.60.10.4:5080"
    assert env["SIP_EDGE_SECRET"]["secretRef"] == "sip-edge-secret"  # by reference, from Key Vault
    assert ('control_port = 5080\ncontrol_secret_env = "SIP_EDGE_CONTROL_KEY"\n'
            'edge_credential_env = "SIP_EDGE_CREDENTIAL"') in _script(run)


def test_the_identity_reads_the_edges_secrets_and_pulls_the_registry_and_nothing_subscription_wide(
        edge_run: Run) -> None:
    principal = _edge_identity(edge_run)["principalId"]
    vm = unwrap(edge_run.one(VM, NAME).inputs)
    assert vm["identity"] == {"type": "UserAssigned",
                              "userAssignedIdentities": [edge_run.one(IDENTITY, NAME).outputs["id"]]}
    mine = [unwrap(r.inputs) for r in edge_run.of_type(ASSIGNMENT) if unwrap(r.inputs)["principalId"] == principal]
    user = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User
    ids = {r.outputs["id"]: r.name for r in edge_run.of_type("azure-native:keyvault:Secret")}
    secrets = sorted(ids[a["scope"]] for a in mine if a["roleDefinitionId"].endswith(user))
    # its own two credentials, never the deployment secret they are derived from
    assert secrets == ["voicefleet-azure-test-sip-edge-api-key-team-a", "voicefleet-azure-test-sip-edge-control-key",
                       "voicefleet-azure-test-sip-edge-credential", "voicefleet-azure-test-sip-edge-digest-twilio"]
    (pull,) = [a for a in mine if a["roleDefinitionId"].endswith("7f951dda-4ed3-4680-a7ca-43fe172d538d")]  # AcrPull
    assert pull["scope"] == edge_run.one("azure-native:containerregistry:Registry").outputs["id"]
    # Nothing else: no subscription, resource group or vault-wide grant.
    assert len(mine) == len(secrets) + 1
    # The VM boots once its grants exist (it still retries while they propagate).
    grants = {r.urn for r in edge_run.of_type(ASSIGNMENT) if unwrap(r.inputs)["principalId"] == principal}
    assert grants <= set(edge_run.one(VM, NAME).dependencies)


def test_the_edge_holds_credentials_derived_for_its_url_and_never_the_deployment_secret(edge_run: Run) -> None:
    vault = {r.name: unwrap(r.inputs)["properties"]["value"] for r in edge_run.of_type("azure-native:keyvault:Secret")}
    made = vault["voicefleet-azure-test-sip-edge-secret"]
    url = "http://10.60.10.4:5080"  # SIP_EDGE_URL, the dispatcher's (the test above)
    assert EdgeSecret(made).edge_of(vault["voicefleet-azure-test-sip-edge-credential"]) == url
    assert vault["voicefleet-azure-test-sip-edge-control-key"] == EdgeSecret(made).control_credential(url)
    assert "SIP_EDGE_SECRET" not in _script(edge_run)


def test_the_vm_is_trusted_launch_without_password_or_ssh_and_holds_no_secret(edge_run: Run) -> None:
    vm = unwrap(edge_run.one(VM, NAME).inputs)
    assert vm["securityProfile"] == {"securityType": "TrustedLaunch",
                                     "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    linux = vm["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True and "adminPassword" not in vm["osProfile"]
    (key,) = linux["ssh"]["publicKeys"]
    assert key["keyData"].startswith("ssh-rsa ")  # the stack's own, whose private half nothing uses
    assert not any(rule["destinationPortRange"] == "22" for rule in _rules(edge_run).values())
    assert vm["tags"]["role"] == "sip-edge" and vm["hardwareProfile"]["vmSize"] == "Standard_D2s_v5"
    assert vm["diagnosticsProfile"] == {"bootDiagnostics": {"enabled": True}}  # where a failed boot says why
    script = _script(edge_run)
    made = next(unwrap(r.inputs)["properties"]["value"] for r in edge_run.of_type("azure-native:keyvault:Secret")
                if r.name == "voicefleet-azure-test-sip-edge-secret")
    for secret in (API_KEY, DIGEST, made, *SECRETS.values()):
        assert secret not in script
    assert "--password-stdin" in script and "-H @-" in script and "access_token@-" in script
    assert "Bearer $token\"" not in script  # no token on a command line
    assert "https://deb.debian.org/" in script  # so the VM needs no port 80 out


def test_the_edges_file_loads_with_the_edges_own_loader(edge_run: Run, tmp_path: Path) -> None:
    from sipedge.config import CONFIG_VARIABLE
    from sipedge.config import load as load_edge

    config = _script(edge_run).split("<<'EDGE'\n", 1)[1].split("EDGE\n", 1)[0]
    (tmp_path / "edge.toml").write_text(config)
    environment = {**{name: "x" * 48 for name in ("SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_CONTROL_KEY",
                                                  "SIP_EDGE_DIGEST_TWILIO")},
                   "SIP_EDGE_CREDENTIAL": EdgeSecret("x" * 48).edge_credential("http://10.60.10.4:5080")}
    loaded = load_edge({CONFIG_VARIABLE: str(tmp_path / "edge.toml"), **environment})
    address = unwrap(edge_run.one("azure-native:network:PublicIPAddress", NAME).outputs)
    assert loaded.sip_address == "10.60.10.4" and loaded.public_address == address["ipAddress"]
    assert loaded.dispatcher_url.startswith("https://")  # Container Apps' own name, under Microsoft's certificate
    assert loaded.control_address == "10.60.10.4"  # never the public address
    outputs = unwrap(edge_run.completed[edge_run.one("voicefleet:azure:AzureStack").urn])
    assert outputs["sipEdgeOriginationUri"] == f"sip:{address['ipAddress']}:5060"


def test_a_protected_stack_keeps_the_static_address_and_may_drop_the_edges_secrets(stack: StackRunner) -> None:
    run = run_azure_edge(stack, protect="true")
    address = run.one("azure-native:network:PublicIPAddress", NAME)
    assert address.protect
    assert unwrap(address.inputs)["sku"] == {"name": "Standard"}
    assert unwrap(address.inputs)["publicIPAllocationMethod"] == "Static"
    edge_secrets = [r for r in run.of_type("azure-native:keyvault:Secret") if "sip-edge" in r.name]
    assert len(edge_secrets) == 5 and not any(r.protect for r in edge_secrets)
    vm = run.one(VM, NAME)
    assert not vm.protect and vm.delete_before_replace  # the interface, with both addresses, is one VM's
    unprotected = run_azure_edge(stack)
    assert not any(r.protect for r in unprotected.registrations if r.name.startswith(NAME))


def test_a_new_source_changes_the_group_in_place(stack: StackRunner, edge_run: Run) -> None:
    twilio = EDGE["trunks"][0]
    after = run_azure_edge(stack, {**EDGE, "trunks": [{**twilio, "sources": ["3.0.0.0/30", *twilio["sources"]]}]})
    before_rules, after_rules = _rules(edge_run), _rules(after)
    assert sorted(after_rules) == sorted(before_rules)
    assert after_rules["sip-in"]["sourceAddressPrefixes"] == ["3.0.0.0/30", *sorted(TWILIO_SIGNALLING)]
    assert {name for name in before_rules if before_rules[name] != after_rules[name]} == {"sip-in", "udp-out"}
    assert after.one(NSG, NAME).urn == edge_run.one(NSG, NAME).urn


def test_the_edges_user_reaches_neither_host_address_but_for_dns(edge_run: Run, tmp_path: Path) -> None:
    script = _script(edge_run)
    rules = script.split("<<'NFT'\n", 1)[1].split("NFT\n", 1)[0]
    uid = sip_edge_host.EDGE_UID
    for dns in ("udp dport 53", "tcp dport 53"):
        assert rules.index(f"meta skuid {uid} ip daddr 168.63.129.16 {dns} accept") < rules.index(
            f"meta skuid {uid} ip daddr 168.63.129.16 reject")
    assert f"meta skuid {uid} ip daddr 169.254.169.254 reject" in rules
    assert "169.254.169.254 udp" not in rules  # the metadata service is no resolver on Azure
    assert_nft_takes(rules, tmp_path)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_boot_script_is_valid_bash(edge_run: Run) -> None:
    checked = subprocess.run(["bash", "-n"], input=_script(edge_run), capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_secret_the_boot_cannot_read_fails_it_after_the_grants_propagation(edge_run: Run, tmp_path: Path) -> None:
    failed = boot_secrets(_script(edge_run), tmp_path, "fetch() { return 22; }")
    assert failed.returncode == 1 and "the unit is written" not in failed.stderr + failed.stdout
    assert "SIP_EDGE_API_KEY_TEAM_A could not be read" in failed.stderr
    slept = [int(line.split()[1]) for line in (tmp_path / "log").read_text().split("\n")[:-1]]
    assert len(slept) == TRIES - 1 and sum(slept) > 8 * 60  # Azure RBAC's "up to 10 minutes", most of it


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_fetch_sends_the_token_through_stdin_and_fails_on_a_refusal(edge_run: Run, tmp_path: Path) -> None:
    """The rendered `fetch`, with curl and the metadata service stood in for: the token goes to curl as a
    header on stdin, never an argument, and a refused read (curl -f's 22) fails the fetch."""
    script = _script(edge_run)
    functions = script[script.index("imds_token() {"):script.index("install -d -m 0700")]
    curl = (f'curl() {{ printf "%s\\n" "$*" >> {tmp_path}/args; case "$*" in *Metadata:true*) '
            "echo '{\"access_token\": \"TOKEN-abc\"}';; *) cat > " + f"{tmp_path}/stdin; "
            '[ -n "${REFUSE:-}" ] && return 22; echo \'{"value": "the-secret"}\';; esac; }')
    body = "\n".join(["set -euo pipefail", curl, functions, 'value=$(fetch SIP_EDGE_CREDENTIAL) && echo "got $value"'])
    read = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=30, check=False)
    assert read.returncode == 0 and read.stdout == "got the-secret\n", read.stderr
    assert (tmp_path / "stdin").read_text() == "Authorization: Bearer TOKEN-abc\n"
    assert "TOKEN-abc" not in (tmp_path / "args").read_text()
    refused = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=30, check=False,
                             env={**os.environ, "REFUSE": "1"})
    assert refused.returncode != 0 and "got" not in refused.stdout


def test_a_second_up_replaces_nothing(stack: StackRunner) -> None:
    first = run_azure_edge(stack)
    second = run_azure_edge(stack, previous=unwrap(first.completed[first.one("voicefleet:azure:AzureStack").urn]))
    mine = {r.urn: r.inputs for r in first.registrations if r.name.startswith(NAME)}
    assert VM in {r.type for r in first.registrations if r.name == NAME}
    assert mine and mine == {r.urn: r.inputs for r in second.registrations if r.name.startswith(NAME)}


@pytest.mark.parametrize(("edge", "said"), [
    ({**EDGE, "machineType": "n2-standard-2"}, "machineType: this azure stack's edge has no such key; its "
                                               "host's size is vmSize"),
    ({**EDGE, "vmSize": "Standard_D2ps_v5"}, "x86_64 vmSize (Standard_D2s_v5; got Standard_D2ps_v5)"),
    ({**EDGE, "vmSize": "D2s_v5"}, "vmSize: String should match pattern"),
])
def test_the_vms_size_is_an_x86_64_vm_size(stack: StackRunner, edge: dict[str, Any], said: str) -> None:
    from stacks.config.reader import SettingsError

    with pytest.raises(SettingsError) as refused:
        run_azure_edge(stack, edge)
    assert said in str(refused.value)


def test_the_edges_container_holds_no_capability_and_binds_no_privileged_port(edge_run: Run) -> None:
    script = _script(edge_run)
    unit = script[script.index("<<'UNIT'\n"):script.index("\nUNIT\n")].replace("\\\n", " ")
    (run,) = [line.split()[1:] for line in unit.splitlines() if line.startswith("ExecStart=/usr/bin/podman run ")]
    assert {"--cap-drop=all", "--security-opt=no-new-privileges"} <= set(run)
    edge = tomllib.loads(script[script.index("<<'EDGE'\n") + len("<<'EDGE'\n"):script.index("\nEDGE\n")])
    ports = {key: value for key, value in edge.items() if key.endswith("_port")}
    assert {"sip_port", "rtp_port", "control_port"} <= set(ports) and min(ports.values()) > 1023, ports


def _pack_found(group: dict[str, Any]) -> list[str]:
    from policy import rules as pack

    _, check = pack.RESOURCE_CHECKS["sip-edge-azure-edge-ports-only"]
    return list(check(NSG, group))


def test_the_policy_pack_takes_the_edges_group_and_refuses_ssh_or_sip_from_anyone(
        stack: StackRunner, edge_run: Run) -> None:
    group = unwrap(edge_run.one(NSG, NAME).inputs)
    assert _pack_found(group) == []
    sip = _rules(edge_run)["sip-in"]
    ssh = {**sip, "name": "ssh", "protocol": "Tcp", "destinationPortRange": "22",
           "sourceAddressPrefixes": ["203.0.113.0/24"]}
    open_sip = {**sip, "name": "open", "sourceAddressPrefixes": ["0.0.0.0/1"]}
    open_control = {**sip, "name": "control", "protocol": "Tcp", "destinationPortRange": "5080",
                    "sourceAddressPrefixes": None, "sourceAddressPrefix": "Internet"}
    deny = _rules(edge_run)["deny-other-in"]  # kept: a group without it is refused on its own account
    found = _pack_found({**group, "securityRules": [ssh, open_sip, open_control, deny]})
    assert len(found) == 3 and "tcp 22-22" in found[0] and "opens SIP to 0.0.0.0/1" in found[1]
    assert "tcp 5080-5080 from 0.0.0.0/0" in found[2]
    # The control API from the whole virtual network (its bots' subnet too), not the dispatcher's subnet alone.
    wide_control = {**_rules(edge_run)["control-in"], "sourceAddressPrefix": "10.60.0.0/16"}
    assert _pack_found({**group, "securityRules": [wide_control, deny]}) == [
        "the SIP edge's rule opens the control API (TCP 5080) to 10.60.0.0/16, wider than /23: admit the "
        "dispatcher's own subnet only"]
    anyone = run_azure_edge(stack, {**EDGE, "trunks": [{**EDGE["trunks"][0], "sources": ["0.0.0.0/0"],
                                                         "allowAnySource": True, "mediaSources": ["0.0.0.0/0"],
                                                         "allowAnyMediaSource": True}]})
    assert _pack_found(unwrap(anyone.one(NSG, NAME).inputs)) == []  # the trunk asked for it, and each rule says so
    assert "allowAnySource" in _rules(anyone)["sip-in"]["description"]
