"""The TURN relay a stack provisions (or points at) for cloud SmallWebRTC sessions, both clouds.

What is checked: the relay opens TURN ports only and nothing else, reads its shared secret by
reference with its own narrowly-scoped identity, is not an open relay (the policy pack refuses
one), coturn from Debian accepts the rendered configuration, and the dispatcher gets exactly the
TURN variables issue 10's dispatcher reads, the secret by reference.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from policy import rules
from stacks.config.model import Settings
from stacks.config.turn import TurnSettings
from stacks.shared import contract
from stacks.shared.turn_server import coturn_config
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import ADMIN_SECRETS, CHANNEL, CHANNEL_SECRETS, StackRunner
from tests.infra.helpers import container

TURN_SECRET = "SENTINEL-turn-shared-secret-0123"
TURN_SECRETS = {"voicefleet:dailyApiKey": "SENTINEL-daily", "voicefleet:dispatcherApiKeys": "SENTINEL-k1",
                **ADMIN_SECRETS, "voicefleet:turnSharedSecret": TURN_SECRET, **CHANNEL_SECRETS}
EXTERNAL = "turn:turn.example.net:3478?transport=udp,turns:turn.example.net:443?transport=tcp"


def run_with_turn(stack: StackRunner, cloud: str, generation: int = 1, **overrides: str) -> Run:
    # Cloud WebRTC bots take their signalling over the control channel, which TURN requires.
    return stack(cloud, secrets=TURN_SECRETS, generation=generation,
                 **{"turn": "managed", **CHANNEL[cloud], **overrides})


def with_turn(stack_settings: Callable[..., Settings], cloud: str, **overrides: str) -> Settings:
    """`run_with_turn`'s configuration, read as the program's first step reads it."""
    return stack_settings(cloud, secrets=TURN_SECRETS, **{"turn": "managed", **CHANNEL[cloud], **overrides})


@pytest.fixture
def aws_turn(stack: StackRunner) -> Run:
    return run_with_turn(stack, "aws")


@pytest.fixture
def gcp_turn(stack: StackRunner) -> Run:
    return run_with_turn(stack, "gcp")


def test_aws_relay_opens_turn_ports_only_to_the_internet(aws_turn: Run) -> None:
    rules_in = sorted((r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"], r.inputs["cidrIpv4"])
                      for r in aws_turn.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                      if r.name.startswith("voicefleet-aws-test-turn-"))
    assert rules_in == [("tcp", 3478, 3478, "0.0.0.0/0"), ("udp", 3478, 3478, "0.0.0.0/0"),
                        ("udp", 49152, 65535, "0.0.0.0/0")]


def test_aws_relay_reads_only_its_secret_by_reference_with_imdsv2(aws_turn: Run) -> None:
    instance = aws_turn.one("aws:ec2/instance:Instance")
    inputs = unwrap(instance.inputs)
    assert inputs["metadataOptions"]["httpTokens"] == "required" and inputs["rootBlockDevice"]["encrypted"]
    assert inputs["tags"]["role"] == "turn" and "keyName" not in inputs
    assert TURN_SECRET not in json.dumps(inputs)  # only the secret's ARN and version in user data
    assert "secretsmanager get-secret-value" in inputs["userData"] and "--version-id" in inputs["userData"]
    (grant,) = [r for r in aws_turn.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-read-turn")]
    (statement,) = json.loads(unwrap(grant.inputs["policy"]))["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    secret_names = [arn.split(":secret:")[1] for arn in statement["Resource"]]
    assert len(secret_names) == 1
    assert re.fullmatch(r"/voicefleet/aws-test/turn-shared-secret-[0-9a-f]{26}-AbCdEf", secret_names[0])
    assert aws_turn.one("aws:ec2/eipAssociation:EipAssociation").inputs["allocationId"].startswith("eipalloc-")


def test_aws_dispatcher_gets_the_turn_variables_and_the_webrtc_bot(aws_turn: Run) -> None:
    dispatcher = container(aws_turn, "-dispatcher")
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert set(env) == set(contract.ECS_ENV + contract.TURN_ENV + contract.ECS_WEBRTC_ENV + contract.CHANNEL_ENV
                           + contract.ECS_CHANNEL_ENV)
    assert env["TURN_URLS"] == "turn:203.0.113.10:3478?transport=udp,turn:203.0.113.10:3478?transport=tcp"
    assert (env["TRANSPORTS"], env["DEFAULT_TRANSPORT"], env["ICE_TRANSPORT_POLICY"]) == ("daily,webrtc", "daily",
                                                                                          "relay")
    assert env["ECS_TASK_DEFINITION_WEBRTC"] == "voicefleet-aws-test-bot-webrtc"
    assert "TURN_SHARED_SECRET" in {s["name"] for s in dispatcher["secrets"]}
    webrtc = container(aws_turn, "-bot-webrtc")
    assert "/voicefleet-aws-test-bot-webrtc@sha256:" in webrtc["image"]
    runs = [s for s in _statements(aws_turn) if s.get("Sid") == "RunBot"]
    assert sorted(s["Resource"].rsplit("/", 1)[1] for s in runs) == ["voicefleet-aws-test-bot-webrtc:*",
                                                                     "voicefleet-aws-test-bot:*"]


def _statements(run: Run) -> list[dict]:
    found = []
    for reg in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        found += json.loads(unwrap(reg.inputs["policy"]))["Statement"]
    return found


def test_gcp_relay_firewall_instance_and_identity(gcp_turn: Run) -> None:
    firewalls = [unwrap(r.inputs) for r in gcp_turn.of_type("gcp:compute/firewall:Firewall")
                 if "voicefleet-turn" in r.inputs.get("targetTags", [])]
    allowed = sorted((a["protocol"], tuple(a["ports"])) for f in firewalls for a in f["allows"])
    assert allowed == [("tcp", ("3478",)), ("udp", ("3478", "49152-65535"))]
    assert all(f["direction"] == "INGRESS" and f["sourceRanges"] == ["0.0.0.0/0"] for f in firewalls)
    instance = unwrap(gcp_turn.one("gcp:compute/instance:Instance").inputs)
    assert instance["labels"] == {"role": "turn"} and instance["tags"] == ["voicefleet-turn"]
    assert instance["networkInterfaces"][0]["accessConfigs"][0]["natIp"] == "203.0.113.20"
    assert TURN_SECRET not in json.dumps(instance)
    turn_account = "serviceAccount:vf-gcp-test-turn@vf-test.iam.gserviceaccount.com"
    readable = [r.inputs["secretId"] for r in gcp_turn.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
                if r.inputs["member"] == turn_account]
    assert readable == ["projects/vf-test/secrets/voicefleet-gcp-test-turn-shared-secret"]


def test_gcp_dispatcher_and_bot_template_for_webrtc(gcp_turn: Run) -> None:
    (service,) = gcp_turn.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = service.inputs["template"]["containers"]
    env = {e["name"]: e.get("value") for e in dispatcher["envs"]}
    assert env["TURN_URLS"].startswith("turn:203.0.113.20:3478") and env["ICE_TRANSPORT_POLICY"] == "relay"
    assert env["TURN_SHARED_SECRET"] is None  # by reference (valueSource), never a value
    (template,) = gcp_turn.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    image = template.inputs["metadata"][contract.GCE_WEBRTC_IMAGE_METADATA_KEY]
    assert "/bot-webrtc@sha256:" in image


def dispatcher_env(run: Run, cloud: str) -> dict[str, str | None]:
    if cloud == "aws":
        return {e["name"]: e["value"] for e in container(run, "-dispatcher")["environment"]}
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = service.inputs["template"]["containers"]
    return {e["name"]: e.get("value") for e in dispatcher["envs"]}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_one_key_may_hold_at_most_half_the_managed_relay(stack: StackRunner, cloud: str) -> None:
    """The program gives the dispatcher the share the settings derive and the relay's coturn the same total
    (the derivation, for each quota: below)."""
    run = run_with_turn(stack, cloud, turnTotalQuota="100")
    assert dispatcher_env(run, cloud)["TURN_CREDENTIALS_PER_KEY"] == "5"
    (boot,) = [text for r in run.registrations if (text := rules._turn_boot_text(r.type, unwrap(r.inputs)))]
    assert "total-quota=100\n" in boot


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
@pytest.mark.parametrize(("total", "per_key"), [("1000", "20"), ("400", "20"), ("300", "15"), ("100", "5"),
                                                 ("25", "1"), ("1", "1")])
def test_the_share_of_one_key_is_derived_from_the_relays_quota(stack_settings: Callable[..., Settings],
                                                               cloud: str, total: str, per_key: str) -> None:
    """Derived from the relay's quotas (each credential takes up to user-quota allocations), capped by
    the dispatcher's own default, where the program decides it: its read of the settings."""
    turn = with_turn(stack_settings, cloud, turnTotalQuota=total).turn
    assert turn is not None and (turn.credentials_per_key, turn.total_quota) == (int(per_key), int(total))


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_an_explicit_share_below_the_whole_relay_is_kept(stack: StackRunner, cloud: str) -> None:
    run = run_with_turn(stack, cloud, turnTotalQuota="100", turnCredentialsPerKey="9")
    assert dispatcher_env(run, cloud)["TURN_CREDENTIALS_PER_KEY"] == "9"  # 90 of 100 allocations


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
@pytest.mark.parametrize(("total", "per_key"), [("100", "10"), ("100", "11"), ("1000", "100"), ("5", "1")])
def test_an_explicit_share_that_holds_the_whole_relay_is_refused(stack: StackRunner, cloud: str, total: str,
                                                                 per_key: str) -> None:
    from stacks.config.settings import SettingsError

    with pytest.raises(SettingsError, match="voicefleet:turnCredentialsPerKey lets one API key hold the whole"):
        run_with_turn(stack, cloud, turnTotalQuota=total, turnCredentialsPerKey=per_key)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
@pytest.mark.parametrize(("explicit", "per_key"), [({}, "20"), ({"turnCredentialsPerKey": "35"}, "35")])
def test_an_external_service_gets_the_operators_share_or_the_default(stack: StackRunner, cloud: str,
                                                                     explicit: dict[str, str], per_key: str) -> None:
    run = run_with_turn(stack, cloud, turn="external", turnUrls=EXTERNAL, **explicit)
    assert dispatcher_env(run, cloud)["TURN_CREDENTIALS_PER_KEY"] == per_key


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_an_external_turn_service_provisions_no_relay(stack: StackRunner, cloud: str) -> None:
    run = run_with_turn(stack, cloud, turn="external", turnUrls=EXTERNAL)
    assert not [r for r in run.registrations if "turn" in r.type.lower() or r.type.endswith("instance:Instance")]
    text = json.dumps([unwrap(r.inputs) for r in run.registrations if "secretVersion" not in r.type])
    assert EXTERNAL in text and TURN_SECRET not in text  # the value lives only in the secret store


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_the_program_with_a_relay_passes_its_own_policies(stack: StackRunner, cloud: str) -> None:
    run = run_with_turn(stack, cloud)
    found = [f"{r.type} {r.name}: {m}" for r in run.registrations for _, (_, check) in rules.RESOURCE_CHECKS.items()
             for m in check(r.type, unwrap(r.inputs))]
    assert found == []
    assert [r for r in run.registrations if rules._turn_boot_text(r.type, unwrap(r.inputs))]  # the check saw it


def test_policy_refuses_an_open_relay(aws_turn: Run) -> None:
    instance = unwrap(aws_turn.one("aws:ec2/instance:Instance").inputs)
    for weakening in ("use-auth-secret\n", "denied-peer-ip=10.0.0.0-10.255.255.255\n",
                      "denied-peer-ip=169.254.0.0-169.254.255.255\n"):
        props = {**instance, "userData": instance["userData"].replace(weakening, "")}
        assert list(rules.turn_not_open_relay("aws:ec2/instance:Instance", props)), weakening
    unlimited = {**instance, "userData": instance["userData"].replace("user-quota=10", "user-quota=0")}
    assert list(rules.turn_not_open_relay("aws:ec2/instance:Instance", unlimited))
    no_auth = {**instance, "userData": instance["userData"] + "no-auth\n"}
    assert list(rules.turn_not_open_relay("aws:ec2/instance:Instance", no_auth))


def test_policy_refuses_other_ports_on_the_relay() -> None:
    ssh = {"direction": "INGRESS", "targetTags": [rules.TURN_TAG], "allows": [{"protocol": "tcp", "ports": ["22"]}]}
    assert list(rules.turn_firewall_ports("gcp:compute/firewall:Firewall", ssh))
    everything = {"targetTags": [rules.TURN_TAG], "allows": [{"protocol": "all"}]}
    assert list(rules.turn_firewall_ports("gcp:compute/firewall:Firewall", everything))
    turn = {"targetTags": [rules.TURN_TAG], "allows": [{"protocol": "udp", "ports": ["3478", "49152-65535"]}]}
    assert not list(rules.turn_firewall_ports("gcp:compute/firewall:Firewall", turn))


def test_policy_refuses_an_ssh_rule_on_the_relays_security_group() -> None:
    from pulumi_policy import PolicyResource, StackValidationArgs

    from tests.infra.policy.test_pack import options

    def resource(typ: str, props: dict, deps: dict | None = None) -> PolicyResource:
        return PolicyResource(typ, props, f"urn:x::{typ}::r", "r", options(), None, None, [], deps or {})

    group = resource("aws:ec2/securityGroup:SecurityGroup", {"description": rules.TURN_SG_DESCRIPTION})
    typ = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    ssh = resource(typ, {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22}, {"securityGroupId": [group]})
    turn = resource(typ, {"ipProtocol": "udp", "fromPort": 49152, "toPort": 65535}, {"securityGroupId": [group]})
    found: list[str] = []
    rules.turn_sg_ports(StackValidationArgs([group, ssh, turn]), lambda m, urn=None: found.append(m))
    assert len(found) == 1 and "tcp 22" in found[0]


@pytest.mark.parametrize(("overrides", "key"), [
    # an external service's secret is yours (a managed relay's the stack makes: test_made_secrets.py)
    ({"turn": "external", "turnUrls": "turn:turn.example.net:3478"}, "voicefleet:turnSharedSecret"),
    ({"turn": "external", "turnUrls": "https://turn.example.net"}, "voicefleet:turnUrls"),
    ({"turn": "managed", "turnRelayPorts": "3478-3500"}, "voicefleet:turnRelayPorts"),
    ({"turn": "managed", "turnDomain": "Turn.Example.NET"}, "voicefleet:turnDomain"),
])
def test_bad_turn_settings_name_the_key(stack: StackRunner, overrides: dict[str, str], key: str) -> None:
    from stacks.config.settings import SettingsError

    secrets = {"voicefleet:dailyApiKey": "SENTINEL-daily", "voicefleet:dispatcherApiKeys": "SENTINEL-k1",
               **ADMIN_SECRETS}
    if overrides["turn"] == "managed" and key != "voicefleet:turnSharedSecret":
        secrets["voicefleet:turnSharedSecret"] = TURN_SECRET
    if overrides["turn"] == "external" and key != "voicefleet:turnSharedSecret":
        secrets["voicefleet:turnSharedSecret"] = TURN_SECRET
    with pytest.raises(SettingsError, match=key):
        stack("aws", secrets=secrets, **overrides)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_boot_scripts_are_valid_bash(stack: StackRunner, cloud: str) -> None:
    run = run_with_turn(stack, cloud)
    machines = [unwrap(r.inputs) for r in run.registrations
                if r.type.endswith(("instance:Instance", "instanceTemplate:InstanceTemplate"))]
    scripts = [m.get("userData") or m.get("metadataStartupScript") or (m.get("metadata") or {}).get("startup-script")
               for m in machines]
    assert scripts and all(scripts)
    for script in scripts:
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (`turnserver`) is not installed")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare for a private network namespace")
def test_debians_coturn_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    """The relay's config, as rendered, started by Debian's coturn in a namespace of its own (the
    boot script appends the same lines: external-ip, the secret; here loopback addresses)."""
    config = coturn_config(TurnSettings(mode="managed", shared_secret=None))  # type: ignore[arg-type]
    config = config.replace("syslog\n", f"log-file={tmp_path}/turn.log\n")
    config += "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nstatic-auth-secret=0123456789abcdef0123\n"
    (tmp_path / "turnserver.conf").write_text(config)
    started = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         f"ip link set lo up && timeout 5 turnserver -c {tmp_path}/turnserver.conf --pidfile {tmp_path}/pid; true"],
        capture_output=True, text=True, timeout=60)
    log = "\n".join(p.read_text() for p in tmp_path.glob("turn*.log")) + started.stdout + started.stderr
    assert "Relay ports initialization done" in log, log[-3000:]
    assert "CONFIG ERROR" not in log and "Bad configuration" not in log and "unknown" not in log.lower()


def test_a_short_shared_secret_is_refused(stack: StackRunner) -> None:
    """Short keys make forged TURN credentials cheap; the dispatcher refuses them too (dispatcher/media/turn.py)."""
    from stacks.config.settings import SettingsError

    secrets = {"voicefleet:dailyApiKey": "SENTINEL-daily", "voicefleet:dispatcherApiKeys": "SENTINEL-k1",
               **ADMIN_SECRETS, "voicefleet:turnSharedSecret": "too-short"}
    with pytest.raises(SettingsError, match="voicefleet:turnSharedSecret must be at least 16"):
        stack("aws", secrets=secrets, turn="managed")


def test_a_managed_relay_whose_quota_cannot_hold_every_session_is_said_at_preview(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three allocations a session (a browser allocates on each of its two TURN URLs under
    ICE_TRANSPORT_POLICY=relay, the bot on its one): 1,000 hold 333 sessions. The note also says what
    one API key may start: 20 credentials, each counted for its 600 s life, are 2 starts a minute."""
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    run_with_turn(stack, "aws", maxConcurrentSessions="400", turnTotalQuota="1000")
    (note,) = [w for w in warnings if w.startswith("TURN:")]
    assert "relay at most 333 WebRTC sessions at once (3 allocations each" in note
    assert "maxConcurrentSessions=400" in note and "turnTotalQuota to at least 1200" in note
    assert "20 TURN credentials (turnCredentialsPerKey)" in note and "2 WebRTC starts a minute" in note
    warnings.clear()
    run_with_turn(stack, "aws", maxConcurrentSessions="333", turnTotalQuota="1000")
    assert [w for w in warnings if w.startswith("TURN:")] == []


def _turn(mode: str, **fields: object) -> TurnSettings:
    return TurnSettings(mode=mode, shared_secret=None, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("turn", "allocations"), [
    (_turn("managed"), 3),
    (_turn("managed", domain="turn.example.net", tls_certificate="PEM", tls_private_key="KEY"), 4),
    (_turn("external", external_urls=("turns:turn.example.net:443?transport=tcp",)), 2),
])
def test_a_session_allocates_once_per_turn_url_a_browser_gets_and_once_for_the_bot(
        turn: TurnSettings, allocations: int) -> None:
    from stacks.config.turn import allocations_per_session, browser_urls
    from stacks.shared.turn_server import urls

    assert allocations_per_session(turn) == allocations
    if turn.mode == "managed":
        assert browser_urls(turn) == len(urls(turn, "198.51.100.7"))  # what the dispatcher hands out


def test_the_prod_stacks_advice_for_every_session_relayed_passes_and_is_quiet(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """stacks/Pulumi.aws-prod.yaml and gcp-prod.yaml say how to relay all 2,500 sessions at 60 WebRTC
    starts a minute from one key: 7,500 allocations, 600 credentials a key (600 x 10 < 7,500)."""
    from stacks.config.turn import starts_per_minute_per_key, warn_if_short

    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    run = run_with_turn(stack, "aws", turnTotalQuota="7500", turnCredentialsPerKey="600")
    assert dispatcher_env(run, "aws")["TURN_CREDENTIALS_PER_KEY"] == "600"
    relay = TurnSettings(mode="managed", shared_secret=None, total_quota=7500,  # type: ignore[arg-type]
                         credentials_per_key=600)
    warn_if_short(relay, 2500)
    assert [w for w in warnings if w.startswith("TURN:")] == []
    assert starts_per_minute_per_key(relay) == 60


def test_a_cloudrun_job_with_the_relay_runs_the_webrtc_bot_and_offers_only_webrtc(stack: StackRunner) -> None:
    """A job has one container: with the relay it is the SmallWebRTC bot, which has no Daily to join."""
    run = run_with_turn(stack, "gcp", botRuntime="cloudrun")
    (job,) = run.of_type("gcp:cloudrunv2/job:Job")
    (bot,) = job.inputs["template"]["template"]["containers"]
    assert "/bot-webrtc@sha256:" in bot["image"]
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = service.inputs["template"]["containers"]
    env = {e["name"]: e.get("value") for e in dispatcher["envs"]}
    assert env["TRANSPORTS"] == "webrtc" and env["DEFAULT_TRANSPORT"] == "webrtc"
