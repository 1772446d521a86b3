"""The SIP edge an AWS stack runs (stacks/aws/sip_edge.py): its exact ingress and egress, a host that
reads only its own secrets by reference (none in its boot script) and pulls only the dispatcher's
image, the dispatcher told the edge's control API on its private address, the trunk told the
public one, and a second `up` or a re-created stack that replaces nothing it should not."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dispatcher.phone.edge_secret import EdgeSecret
from stacks.tools.mocks import Run, unwrap
from stacks.tools.preflight import lifecycle
from tests.infra.conftest import SECRETS, StackRunner
from tests.infra.helpers import ROOT, container

API_KEY = "SENTINEL-team-a-key-0123456789"
DIGEST = "SENTINEL-digest-password-42"
TWILIO_SIGNALLING = ("54.172.60.0/30", "54.244.51.0/30")  # two of Twilio's published signalling ranges
TWILIO_MEDIA = "168.86.128.0/18"  # Twilio's published media range
PBX = {"name": "pbx", "sources": ["198.51.100.7/32"], "mediaSources": ["198.51.100.7/32"], "numbers": {"200": "team-a"}}
EDGE: dict[str, Any] = {"enabled": True, "trunks": [
    {"name": "twilio", "sources": list(TWILIO_SIGNALLING), "mediaSources": [TWILIO_MEDIA],
     "numbers": {"+14155550199": "team-a"},
     "terminationUri": "sip:example.pstn.twilio.com", "callers": ["team-a"], "destinations": ["+1*"],
     "digestUsername": "voicefleet"}]}
EDGE_SECRETS = {**SECRETS, "voicefleet:dispatcherApiKeys": f"team-a:{API_KEY},SENTINEL-client-key-2",
                "voicefleet:sipEdgeDigestPasswords": json.dumps({"twilio": DIGEST})}
NAME = "voicefleet-aws-test-sip-edge"
# The edge refuses a plain-HTTP stack (its calls' API keys would cross the internet in clear).
HTTPS = {"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/test",
         "dispatcherDomain": "voice.example.com"}


def run_with_edge(stack: StackRunner, edge: dict[str, Any] | None = None, cloud: str = "aws",
                  secrets: dict[str, str] | None = None, **overrides: Any) -> Run:
    return stack(cloud, secrets={**EDGE_SECRETS, **(secrets or {})},
                 **{**HTTPS, "sipEdge": json.dumps(EDGE if edge is None else edge), **overrides})


@pytest.fixture
def edge_run(stack: StackRunner) -> Run:
    return run_with_edge(stack)


def _rules(run: Run, typ: str, group: str) -> list[tuple[Any, ...]]:
    return sorted((r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"],
                   r.inputs.get("cidrIpv4") or r.inputs.get("referencedSecurityGroupId"))
                  for r in run.of_type(f"aws:vpc/{typ}:{typ[0].upper()}{typ[1:]}")
                  if r.inputs["securityGroupId"] == group)


def test_sip_and_rtp_come_from_the_trunks_sources_only_control_from_the_dispatcher(edge_run: Run) -> None:
    ingress = _rules(edge_run, "securityGroupIngressRule", f"{NAME}-id")
    assert ingress == [("tcp", 5080, 5080, "voicefleet-aws-test-dispatcher-app-id"),
                       ("udp", 5060, 5060, TWILIO_SIGNALLING[0]), ("udp", 5060, 5060, TWILIO_SIGNALLING[1]),
                       ("udp", 40000, 40399, TWILIO_MEDIA)]
    # UDP out to the trunk's networks alone (its SIP and its media), and to anyone for DNS and NTP only.
    assert _rules(edge_run, "securityGroupEgressRule", f"{NAME}-id") == [
        ("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0"), ("udp", 0, 65535, TWILIO_MEDIA),
        ("udp", 0, 65535, TWILIO_SIGNALLING[0]), ("udp", 0, 65535, TWILIO_SIGNALLING[1]),
        ("udp", 53, 53, "0.0.0.0/0"), ("udp", 123, 123, "0.0.0.0/0")]
    # The dispatcher's tasks may open the control port of the edge's group, and no other new port.
    dispatcher_out = _rules(edge_run, "securityGroupEgressRule", "voicefleet-aws-test-dispatcher-app-id")
    assert dispatcher_out == [("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 5080, 5080, f"{NAME}-id")]


@pytest.mark.parametrize("trunk", [PBX, {**PBX, "usdPerMinute": {"inbound": 0.0085}}], ids=["free", "priced"])
def test_an_edge_that_only_takes_calls_has_its_control_api_for_the_dispatcher_alone(
        stack: StackRunner, trunk: dict[str, Any]) -> None:
    """No trunk places calls, yet the dispatcher's status (and transfers) ask the edge: its control API on
    the private address, open to the dispatcher's tasks only, and the dispatcher told it with the secret."""
    run = run_with_edge(stack, {"enabled": True, "trunks": [trunk]},
                        secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    assert _rules(run, "securityGroupIngressRule", f"{NAME}-id") == [
        ("tcp", 5080, 5080, "voicefleet-aws-test-dispatcher-app-id"), ("udp", 5060, 5060, PBX["sources"][0]),
        ("udp", 40000, 40399, PBX["mediaSources"][0])]
    assert ("tcp", 5080, 5080, f"{NAME}-id") in _rules(run, "securityGroupEgressRule",
                                                       "voicefleet-aws-test-dispatcher-app-id")
    dispatcher = container(run, "-dispatcher")
    assert {e["name"]: e["value"] for e in dispatcher["environment"]}["SIP_EDGE_URL"] == "http://10.0.0.10:5080"
    assert "SIP_EDGE_SECRET" in {s["name"] for s in dispatcher["secrets"]}
    script = unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    assert ('control_address = "10.0.0.10"\ncontrol_port = 5080\ncontrol_secret_env = "SIP_EDGE_CONTROL_KEY"\n'
            'edge_credential_env = "SIP_EDGE_CREDENTIAL"') in script
    assert "termination_uri" not in script
    assert ("usd_per_minute = { inbound = 0.0085 }" in script) == ("usdPerMinute" in trunk)


def test_the_host_reads_its_own_secrets_by_reference_with_imdsv2_and_pulls_one_image(edge_run: Run) -> None:
    instance = unwrap(edge_run.one("aws:ec2/instance:Instance", NAME).inputs)
    assert instance["metadataOptions"]["httpTokens"] == "required" and instance["rootBlockDevice"]["encrypted"]
    assert instance["primaryNetworkInterface"]["networkInterfaceId"] == f"{NAME}-id"
    assert instance["tags"]["role"] == "sip-edge" and "keyName" not in instance
    made = unwrap(next(r for r in edge_run.registrations if r.name == f"{NAME}-secret"
                       and r.type.endswith("SecretVersion")).inputs)["secretString"]
    for secret in (API_KEY, DIGEST, made, *SECRETS.values()):
        assert secret not in instance["userData"]
    assert "secretsmanager get-secret-value" in instance["userData"] and "--password-stdin" in instance["userData"]
    statements = {name: json.loads(unwrap(r.inputs["policy"]))["Statement"]
                  for r in edge_run.of_type("aws:iam/rolePolicy:RolePolicy")
                  if r.inputs["role"] == f"{NAME}-id" for name in [r.name]}
    (read,) = statements["voicefleet-aws-test-read-sip-edge"]
    assert read["Action"] == ["secretsmanager:GetSecretValue"]
    assert sorted(arn.split(":secret:/voicefleet/aws-test/")[1].rsplit("-", 2)[0] for arn in read["Resource"]) == [
        "sip-edge-api-key-team-a", "sip-edge-control-key", "sip-edge-credential", "sip-edge-digest-twilio"]
    login, pull = statements[f"{NAME}-pull"]
    assert (login["Action"], login["Resource"]) == (["ecr:GetAuthorizationToken"], "*")
    assert pull["Resource"].endswith(":repository/voicefleet-aws-test-dispatcher")
    assert not any(a.startswith(("ecr:Put", "ecr:Delete", "iam:", "ec2:")) for a in pull["Action"])


def test_the_store_holds_the_edges_secrets_and_the_dispatcher_takes_only_the_control_one(edge_run: Run) -> None:
    stored = {unwrap(r.inputs["secretString"]) for r in edge_run.of_type(
        "aws:secretsmanager/secretVersion:SecretVersion") if "sip-edge" in r.name}
    assert {API_KEY, DIGEST} < stored and len(stored) == 5  # and SIP_EDGE_SECRET, the edge's two credentials
    dispatcher = container(edge_run, "-dispatcher")
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert env["SIP_EDGE_URL"] == "http://10.0.0.10:5080"  # the edge's own interface, inside the VPC
    secrets = {s["name"] for s in dispatcher["secrets"]}
    assert "SIP_EDGE_SECRET" in secrets and not any(s.startswith(("SIP_EDGE_API_KEY", "SIP_EDGE_DIGEST"))
                                                     for s in secrets)


def test_the_edge_holds_credentials_derived_for_its_url_and_never_the_deployment_secret(edge_run: Run) -> None:
    """The host's role reads its own credentials, derived for the URL the dispatcher lists it by; the deployment
    secret (the dispatcher's SIP_EDGE_SECRET) is in no grant, boot script or credential of the edge's."""
    versions = {r.name: unwrap(r.inputs["secretString"]) for r in edge_run.of_type(
        "aws:secretsmanager/secretVersion:SecretVersion")}
    made = unwrap(next(r for r in edge_run.registrations if r.name == f"{NAME}-secret"
                       and r.type.endswith("SecretVersion")).inputs)["secretString"]
    url = {e["name"]: e["value"] for e in container(edge_run, "-dispatcher")["environment"]}["SIP_EDGE_URL"]
    derived = EdgeSecret(made)
    assert derived.edge_of(versions["voicefleet-aws-test-sip-edge-credential"]) == url
    assert versions["voicefleet-aws-test-sip-edge-control-key"] == derived.control_credential(url)
    (read,) = [json.loads(unwrap(r.inputs["policy"]))["Statement"][0] for r in edge_run.of_type(
        "aws:iam/rolePolicy:RolePolicy") if r.name == "voicefleet-aws-test-read-sip-edge"]
    assert not any("/sip-edge-secret" in arn for arn in read["Resource"])
    instance = unwrap(edge_run.one("aws:ec2/instance:Instance", NAME).inputs)
    assert made not in instance["userData"] and "read_secret SIP_EDGE_SECRET" not in instance["userData"]


def test_the_edge_binds_its_private_address_and_names_the_public_one_the_stack_outputs(edge_run: Run) -> None:
    script = unwrap(edge_run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    config = script.split("<<'EDGE'\n", 1)[1].split("EDGE\n", 1)[0]
    assert 'sip_address = "10.0.0.10"\npublic_address = "203.0.113.10"\n' in config
    assert 'dispatcher_url = "https://voice.example.com"' in config
    assert 'control_address = "10.0.0.10"' in config  # never the public address
    outputs = unwrap(edge_run.completed[edge_run.one("voicefleet:aws:AwsStack").urn])  # what the program exports
    assert outputs["sipEdgeAddress"] == "203.0.113.10"
    assert outputs["sipEdgeOriginationUri"] == "sip:203.0.113.10:5060"
    association = unwrap(edge_run.one("aws:ec2/eipAssociation:EipAssociation", NAME).inputs)
    assert association["networkInterfaceId"] == f"{NAME}-id"


def test_kamailio_is_installed_with_several_workers_only(stack: StackRunner) -> None:
    inbound = {"enabled": True, "workers": 17, "rtpPorts": "40000-40399",
               "trunks": [PBX]}
    several = run_with_edge(stack, inbound, secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    user_data = unwrap(several.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    # Not its TLS module: no stack key sets tls_port, so no cloud edge's front would load it (docs/sip.md).
    assert "install -y -qq --no-install-recommends kamailio &&" in user_data and "tls-modules" not in user_data
    assert "kamailio" not in unwrap(run_with_edge(stack).one("aws:ec2/instance:Instance", NAME).inputs)["userData"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_the_boot_script_is_valid_bash(edge_run: Run) -> None:
    script = unwrap(edge_run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr


def _boot_secrets(run: Run, tmp_path: Path, fetch: str) -> subprocess.CompletedProcess[str]:
    return boot_secrets(unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"], tmp_path, fetch)


def boot_secrets(script: str, tmp_path: Path, fetch: str) -> subprocess.CompletedProcess[str]:
    """A rendered boot script's own secret lines, under its own `set -euo pipefail`, with `fetch` (the
    cloud's call) and `sleep` (logged, not slept) stood in for, then what the script does next."""
    from stacks.shared import sip_edge_host

    start = script.index(f"chmod 0644 {sip_edge_host.CONFIG}\n")  # the edge's file is written; its secrets next
    section = script[start:script.index(f"cat > {sip_edge_host.FIREWALL}", start)].split("\n", 1)[1]
    body = "\n".join(["set -euo pipefail", f"log={tmp_path}/log", 'sleep() { echo "slept $1" >> "$log"; }', fetch,
                      section.replace(sip_edge_host.SECRETS, str(tmp_path / "secrets.env")),
                      'echo "the unit is written and started"'])
    return subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_secret_the_boot_cannot_read_fails_it_after_a_few_tries(edge_run: Run, tmp_path: Path) -> None:
    denied = ("fetch() { echo 'An error occurred (AccessDeniedException) when calling the GetSecretValue "
              "operation' >&2; return 254; }")
    failed = _boot_secrets(edge_run, tmp_path, denied)
    assert failed.returncode == 1 and "the unit is written" not in failed.stdout
    assert "SIP_EDGE_API_KEY_TEAM_A could not be read; the edge is not started" in failed.stderr
    assert (tmp_path / "log").read_text().split("\n")[:-1] == [f"slept {2 ** n}" for n in range(1, 6)]
    assert not (tmp_path / "secrets.env").exists()  # the edge is never started on a partial file
    empty = _boot_secrets(edge_run, tmp_path, "fetch() { echo; }")  # a secret with no value: the edge refuses it
    assert empty.returncode == 1 and "the unit is written" not in empty.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash")
def test_a_secret_read_on_a_later_try_boots_the_edge(edge_run: Run, tmp_path: Path) -> None:
    # The role is not usable for the first two tries (IAM propagating), then every secret reads.
    flaky = (f'fetch() {{ n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/n; '
             '[ "$n" -ge 2 ] || return 254; echo "value-of-$1"; }')
    booted = _boot_secrets(edge_run, tmp_path, flaky)
    assert booted.returncode == 0 and "the unit is written and started" in booted.stdout, booted.stderr
    names = ("SIP_EDGE_API_KEY_TEAM_A", "SIP_EDGE_CONTROL_KEY", "SIP_EDGE_CREDENTIAL", "SIP_EDGE_DIGEST_TWILIO")
    assert (tmp_path / "secrets.env").read_text() == "".join(f"{name}=value-of-{name}\n" for name in names)


def test_a_second_up_replaces_nothing_and_a_re_created_stack_collides_with_nothing(stack: StackRunner) -> None:
    first = run_with_edge(stack)
    second = run_with_edge(stack, previous=unwrap(first.completed[first.one("voicefleet:aws:AwsStack").urn]))
    mine = [r for r in first.registrations if r.name.startswith(NAME)]
    again = {r.urn: r.inputs for r in second.registrations if r.name.startswith(NAME)}
    assert {r.urn: r.inputs for r in mine} == again  # same inputs: no diff, so no replacement
    instance = first.one("aws:ec2/instance:Instance", NAME)
    assert "ami" in instance.ignore_changes and instance.delete_before_replace  # the interface is the old host's
    assert lifecycle.replacement_violations(first.registrations, first.invokes) == []
    assert lifecycle.recreate_violations(first.registrations, run_with_edge(stack, generation=2).registrations) == []


def test_a_new_source_creates_one_rule_and_changes_no_other(stack: StackRunner, edge_run: Run) -> None:
    """A rule is named by its network: a source that sorts first moves no other rule's network onto another
    resource (which AWS would refuse as a duplicate, or leave a live range out while `up` runs)."""
    def rules(run: Run) -> dict[str, Any]:
        return {r.name: unwrap(r.inputs) for r in run.registrations if r.name.startswith(f"{NAME}-in-")}

    before = rules(edge_run)
    twilio = EDGE["trunks"][0]
    after = rules(run_with_edge(stack, {**EDGE, "trunks": [{**twilio, "sources": ["3.0.0.0/30", *twilio["sources"]]}]}))
    assert {name: after[name] for name in before} == before  # every old rule as it was: no update
    assert sorted(set(after) - set(before)) == [f"{NAME}-in-sip-3-0-0-0-30"]  # and one create


def test_destroy_meets_nothing_protected_or_left_behind(edge_run: Run) -> None:
    mine = [r for r in edge_run.registrations if r.name.startswith(NAME)]
    assert mine and not any(r.protect or r.retain_on_delete for r in mine)
    interface = edge_run.one("aws:ec2/networkInterface:NetworkInterface", NAME)
    # The instance goes before the interface it holds (the engine deletes dependents first).
    assert interface.urn in edge_run.one("aws:ec2/instance:Instance", NAME).dependencies


def test_a_protected_stack_keeps_the_edges_address_and_may_drop_its_secrets(stack: StackRunner) -> None:
    """A protected (prod) stack: removing a trunk, re-mapping a number or turning the edge off deletes
    secrets, which Pulumi refuses for a protected resource; the Elastic IP every trunk names is kept."""
    run = run_with_edge(stack, protect="true")
    edge_secrets = [r for r in run.of_type("aws:secretsmanager/secret:Secret") if "sip-edge" in r.name]
    assert len(edge_secrets) == 5 and not any(r.protect for r in edge_secrets)
    assert run.one("aws:ec2/eip:Eip", NAME).protect
    assert run.one("aws:ec2/networkInterface:NetworkInterface", NAME).protect
    assert not run.one("aws:ec2/instance:Instance", NAME).protect  # replaced when its boot script changes


def _policy_found(run: Run, *extra: dict[str, Any]) -> list[str]:
    """The pack's check over the edge's group and its ingress rules as the stack declares them, plus `extra`."""
    from pulumi_policy import PolicyResource, StackValidationArgs

    from policy import rules
    from tests.infra.policy.test_pack import options

    def resource(typ: str, props: dict[str, Any], deps: dict[str, Any] | None = None) -> PolicyResource:
        return PolicyResource(typ, props, f"urn:x::{typ}::r", "r", options(), None, None, [], deps or {})

    groups = {f"{r.name}-id": resource("aws:ec2/securityGroup:SecurityGroup", unwrap(r.inputs))
              for r in run.of_type("aws:ec2/securityGroup:SecurityGroup")}  # the mocks' ids: name-id
    group = groups[f"{NAME}-id"]
    typ = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    declared = [unwrap(r.inputs) for r in run.of_type(typ) if r.inputs["securityGroupId"] == f"{NAME}-id"]

    def depends(props: dict[str, Any]) -> dict[str, Any]:  # as the engine shows a rule's groups
        other = groups.get(str(props.get("referencedSecurityGroupId")))
        return {"securityGroupId": [group], **({"referencedSecurityGroupId": [other]} if other else {})}

    found: list[str] = []
    rules.sip_edge_sg_ports(StackValidationArgs(
        [group, *(resource(typ, props, depends(props)) for props in [*declared, *extra])]),
        lambda message, urn=None: found.append(message))
    return found


def test_the_policy_pack_takes_the_edges_rules_and_refuses_ssh_or_sip_from_anyone(stack: StackRunner,
                                                                                edge_run: Run) -> None:
    assert _policy_found(edge_run) == []
    ssh = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"}
    open_sip = {"ipProtocol": "udp", "fromPort": 5060, "toPort": 5060, "cidrIpv4": "0.0.0.0/0",
                "description": "sip edge: sip-9"}
    control = {"ipProtocol": "tcp", "fromPort": 5080, "toPort": 5080, "cidrIpv4": "0.0.0.0/0"}
    found = _policy_found(edge_run, ssh, open_sip, control)
    assert len(found) == 3 and "tcp 22-22" in found[0] and "tcp 5080" in found[2]
    assert "opens SIP to 0.0.0.0/0" in found[1]
    # The control API from another group of the stack's (the bots') or one the pack cannot see: not the dispatcher's.
    from_group = {"ipProtocol": "tcp", "fromPort": 5080, "toPort": 5080}
    assert _policy_found(edge_run, {**from_group, "referencedSecurityGroupId": "voicefleet-aws-test-bot-id"},
                         {**from_group, "referencedSecurityGroupId": "sg-0123456789abcdef0"}) == [
        "r opens the control API (TCP 5080) to voicefleet bots: no ingress: the dispatcher's tasks' group "
        "('voicefleet dispatcher tasks') only on the SIP edge",
        "r opens the control API (TCP 5080) to a group this stack does not make: the dispatcher's tasks' group "
        "('voicefleet dispatcher tasks') only on the SIP edge"]
    anyone = run_with_edge(stack, {**EDGE, "trunks": [{**EDGE["trunks"][0], "sources": ["0.0.0.0/0"],
                                                        "allowAnySource": True}]})
    assert _policy_found(anyone) == []  # the trunk asked for it, and the rule says so
    halves = run_with_edge(stack, {**EDGE, "trunks": [{**EDGE["trunks"][0], "sources": ["0.0.0.0/1", "128.0.0.0/1"],
                                                        "allowAnySource": True}]})
    assert _policy_found(halves) == []


def test_rtp_opens_the_workers_ports_to_each_media_source_and_to_anyone_only_when_a_trunk_asks(
        stack: StackRunner) -> None:
    # 400 ports among 3 workers: 132 each (even), so 40396-40399 are no worker's and stay shut.
    two = {"enabled": True, "workers": 3, "trunks": [PBX, {**PBX, "name": "carrier", "numbers": {"300": "team-a"},
                                                           "mediaSources": ["203.0.113.0/24", "198.51.100.7/32"]}]}
    run = run_with_edge(stack, two, secrets={"voicefleet:sipEdgeDigestPasswords": "{}"})
    rtp = [r for r in _rules(run, "securityGroupIngressRule", f"{NAME}-id") if r[0] == "udp" and r[1] != 5060]
    assert rtp == [("udp", 40000, 40395, "198.51.100.7/32"), ("udp", 40000, 40395, "203.0.113.0/24")]
    anyone = run_with_edge(stack, {**EDGE, "trunks": [{**EDGE["trunks"][0], "mediaSources": ["0.0.0.0/0"],
                                                        "allowAnyMediaSource": True}]})
    assert ("udp", 40000, 40399, "0.0.0.0/0") in _rules(anyone, "securityGroupIngressRule", f"{NAME}-id")
    assert _policy_found(anyone) == []  # the trunk asked for it, and the rule says so


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "0.0.0.0/1", "10.0.0.0/8"])
@pytest.mark.parametrize(("kind", "ports"), [("RTP", (40000, 40399)), ("SIP", (5060, 5060))])
def test_the_policy_pack_refuses_sip_or_rtp_from_a_wide_network_no_trunk_asked_for(
        edge_run: Run, cidr: str, kind: str, ports: tuple[int, int]) -> None:
    rule = {"ipProtocol": "udp", "fromPort": ports[0], "toPort": ports[1], "cidrIpv4": cidr,
            "description": f"sip edge: {kind.lower()}-{cidr}"}
    (found,) = _policy_found(edge_run, rule)
    assert f"opens {kind} to {cidr}" in found


def test_the_edges_user_cannot_reach_the_metadata_service(edge_run: Run, tmp_path: Any) -> None:
    """The container shares the host's network: nftables keeps the edge's user (the dispatcher image's)
    from the role's credentials, loaded before every start of the edge."""
    from stacks.shared import sip_edge_host

    script = unwrap(edge_run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"]
    rules = script.split("<<'NFT'\n", 1)[1].split("NFT\n", 1)[0]
    assert f"meta skuid {sip_edge_host.EDGE_UID} ip daddr 169.254.169.254 reject" in rules
    assert f"ExecStartPre=/usr/sbin/nft -f {sip_edge_host.FIREWALL}\n" in script
    dockerfile = (ROOT / "images" / "dispatcher.Dockerfile").read_text()
    assert f"USER {sip_edge_host.EDGE_UID}:{sip_edge_host.EDGE_UID}" in dockerfile  # the user the rule names
    assert_nft_takes(rules, tmp_path)


def assert_nft_takes(rules: str, tmp_path: Path) -> None:
    """nftables' own check (`nft -c`) takes the boot script's ruleset."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(nft).exists():
        pytest.skip("nftables is not installed")
    (tmp_path / "rules.nft").write_text(rules)
    checked = subprocess.run([nft, "-c", "-f", str(tmp_path / "rules.nft")], capture_output=True, text=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
