"""The bot control channel in the stacks: credential by reference, the URL bots dial, least privilege.

A stack with `botChannelToken` gives the dispatcher BOT_CHANNEL_TOKEN from the secret store (pinned
version), and the dispatcher and every bot BOT_CHANNEL_URL = wss://<the dispatcher's HTTPS name>/bots/channel
(a bot never gets the deployment secret: its own machine credential comes with its launch);
stacks/config/channel.py has the why of each rule tested here.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from typing import Any

import pytest

from stacks.config.channel import PING_INTERVAL_SECONDS
from stacks.config.settings import SettingsError
from stacks.gcp.startup import STARTUP_SCRIPT
from stacks.shared import contract
from stacks.tools.mocks import GCP_PROJECT_NUMBER, Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_DOMAIN, CHANNEL_SECRETS, CHANNEL_TOKEN, SECRETS, StackRunner
from tests.infra.helpers import container

AWS_URL = f"wss://{CHANNEL_DOMAIN}/bots/channel"
GCP_URL = f"wss://voicefleet-gcp-test-dispatcher-{GCP_PROJECT_NUMBER}.europe-west4.run.app/bots/channel"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"


def with_channel(stack: StackRunner, cloud: str, **overrides: str) -> Run:
    return stack(cloud, secrets={**SECRETS, **CHANNEL_SECRETS}, **{**CHANNEL[cloud], **overrides})


@pytest.fixture
def aws_channel(stack: StackRunner) -> Run:
    return with_channel(stack, "aws")


@pytest.fixture
def gcp_channel(stack: StackRunner) -> Run:
    return with_channel(stack, "gcp")


def env_of(definition: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition.get("environment") or []}


def secret_refs(definition: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["valueFrom"] for s in definition.get("secrets") or []}


def token_secret_arn(run: Run) -> str:
    (secret,) = [r for r in run.of_type("aws:secretsmanager/secret:Secret") if r.name.endswith("bot-channel-token")]
    # The mocks expand name_prefix as the provider does (a generated tail per creation).
    name = secret.inputs["namePrefix"] + hashlib.sha256(f"1:{secret.name}".encode()).hexdigest()[:26]
    return f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf"


def test_the_token_reaches_only_the_secret_store(aws_channel: Run, gcp_channel: Run) -> None:
    for run in (aws_channel, gcp_channel):
        holders = [r for r in run.registrations if CHANNEL_TOKEN in json.dumps(unwrap(r.inputs), default=str)]
        assert [r.type for r in holders] in (["aws:secretsmanager/secretVersion:SecretVersion"],
                                             ["gcp:secretmanager/secretVersion:SecretVersion"])


def test_aws_dispatcher_gets_the_token_by_pinned_reference_and_the_url(aws_channel: Run) -> None:
    dispatcher = container(aws_channel, "-dispatcher")
    assert set(env_of(dispatcher)) == set(contract.ECS_ENV + contract.CHANNEL_ENV + contract.ECS_CHANNEL_ENV)
    assert env_of(dispatcher)["BOT_CHANNEL_URL"] == AWS_URL
    reference = secret_refs(dispatcher)["BOT_CHANNEL_TOKEN"]
    assert re.fullmatch(re.escape(token_secret_arn(aws_channel)) + r":::[\w-]+", reference)  # a pinned version


def test_aws_bots_never_get_the_deployment_secret_and_dial_the_albs_https_name(aws_channel: Run) -> None:
    bot = container(aws_channel, "-bot")
    assert env_of(bot) == {"MAX_SESSION_SECONDS": "1800", "BOT_CHANNEL_URL": AWS_URL, "LOG_FORMAT": "json"}
    assert "BOT_CHANNEL_TOKEN" not in secret_refs(bot)


def test_aws_bot_execution_role_cannot_read_the_channels_deployment_secret(aws_channel: Run) -> None:
    grants = [r for r in aws_channel.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-read-bot")]
    readable = [resource for grant in grants for s in json.loads(unwrap(grant.inputs["policy"]))["Statement"]
                for resource in s["Resource"]]
    assert token_secret_arn(aws_channel) not in readable


def test_aws_dispatcher_may_retag_tasks_to_claim_them_only_with_the_channel(aws: Run, aws_channel: Run) -> None:
    def claims(run: Run) -> list[dict[str, Any]]:
        (grant,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("bot-run-dispatcher")]
        return [s for s in json.loads(unwrap(grant.inputs["policy"]))["Statement"] if s["Sid"] == "ClaimReserveBot"]

    (claim,) = claims(aws_channel)
    assert claim["Action"] == ["ecs:TagResource", "ecs:UntagResource"]
    assert claim["Resource"].endswith(":task/voicefleet-aws-test/*")  # this cluster's tasks only
    assert claim["Condition"] == {"ForAllValues:StringLike": {"aws:TagKeys": ["voicefleet:*"]}}
    assert claims(aws) == []


def test_aws_bots_keep_no_ingress_and_https_only_tcp_egress(aws_channel: Run) -> None:
    (bot_group,) = [r for r in aws_channel.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name.endswith("-bot")]
    rules = [r for r in aws_channel.registrations if r.type.startswith("aws:vpc/securityGroup")
             and r.inputs.get("securityGroupId") == f"{bot_group.name}-id"]
    assert {r.type.rsplit(":", 1)[1] for r in rules} == {"SecurityGroupEgressRule"}
    assert sorted((r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) for r in rules) == [
        ("tcp", 443, 443), ("udp", 0, 65535)]


def test_without_a_token_there_is_no_channel(aws: Run, gcp: Run) -> None:
    for suffix in ("-bot", "-dispatcher"):
        definition = container(aws, suffix)
        assert not [name for name in [*env_of(definition), *secret_refs(definition)] if name.startswith("BOT_CHANNEL")]
    (service,) = gcp.of_type("gcp:cloudrunv2/service:Service")
    assert not [e for e in service.inputs["template"]["containers"][0]["envs"] if e["name"].startswith("BOT_CHANNEL")]
    (template,) = gcp.of_type(TEMPLATE)
    assert contract.GCE_CHANNEL_URL_METADATA_KEY not in template.inputs["metadata"]
    assert template.inputs["metadata"][contract.GCE_SECRETS_METADATA_KEY] == ""
    for run in (aws, gcp):
        assert not [r for r in run.registrations if "bot-channel-token" in r.name]


def test_cloud_run_gets_the_token_by_pinned_reference_and_the_url(gcp_channel: Run) -> None:
    (service,) = gcp_channel.of_type("gcp:cloudrunv2/service:Service")
    (dispatcher,) = service.inputs["template"]["containers"]
    envs = {e["name"]: e for e in dispatcher["envs"]}
    assert envs["BOT_CHANNEL_URL"]["value"] == GCP_URL
    reference = envs["BOT_CHANNEL_TOKEN"]["valueSource"]["secretKeyRef"]
    assert reference == {"secret": "voicefleet-gcp-test-bot-channel-token", "version": "1"}
    assert "value" not in envs["BOT_CHANNEL_TOKEN"]


def test_cloud_run_request_timeout_outlives_an_idle_bot_and_its_session(gcp: Run, gcp_channel: Run) -> None:
    (service,) = gcp_channel.of_type("gcp:cloudrunv2/service:Service")
    assert service.inputs["template"]["timeout"] == f"{900 + 1800 + 120}s"  # max idle + session + margin
    (plain,) = gcp.of_type("gcp:cloudrunv2/service:Service")
    assert plain.inputs["template"]["timeout"] == "120s"


def test_cloud_run_admits_every_sessions_three_requests_beside_the_api(gcp: Run, gcp_channel: Run) -> None:
    (service,) = gcp_channel.of_type("gcp:cloudrunv2/service:Service")
    # maxConcurrentSessions 10 (defaults) x 3: any API key may start a session over a WebSocket
    # (POST /start with transport websocket, no carrier credential needed), which holds its bot's
    # channel, the client's socket and the bot's media socket; + reserveMaxIdle 10 + 80 API requests.
    assert service.inputs["template"]["maxInstanceRequestConcurrency"] == 3 * 10 + 10 + 80
    (plain,) = gcp.of_type("gcp:cloudrunv2/service:Service")
    assert plain.inputs["template"]["maxInstanceRequestConcurrency"] == 80


# gcp-prod's settings: 2,500 sessions x 3 + 400 reserve bots = 7,900 requests, 920 per instance beside
# the API; relayed audio of 2,500 sessions at 0.37 % of a core = 9.25 vCPUs, on at most 80 % of the
# survivors' vCPUs.
PROD_CHANNELS = {"maxConcurrentSessions": "2500", "reserveMaxIdle": "400", "dispatcherMaxInstances": "18"}
CARRIER = {**SECRETS, **CHANNEL_SECRETS, "voicefleet:twilioAuthToken": "SENTINEL-twilio-auth-4c3d"}


@pytest.mark.parametrize("secrets", [{**SECRETS, **CHANNEL_SECRETS}, CARRIER], ids=["websocket", "carrier"])
def test_cloud_run_spreads_the_requests_over_the_instances_kept_running_less_one(
        stack: StackRunner, secrets: dict[str, str]) -> None:
    run = stack("gcp", secrets=secrets, **{**CHANNEL["gcp"], **PROD_CHANNELS, "dispatcherMinInstances": "13"})
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    # Twelve survivors of thirteen hold every request: ceil(7,900 / 12) each, plus the API's 80.
    assert service.inputs["template"]["maxInstanceRequestConcurrency"] == 659 + 80
    assert service.inputs["template"]["scaling"] == {"minInstanceCount": 13, "maxInstanceCount": 18}


@pytest.mark.parametrize(("minimum", "maximum"),
                         [("0", "8"), ("5", "8"), ("9", "18"), ("12", "18"), ("13", "8"), ("13", "17")])
def test_one_refusal_names_the_least_minimum_and_maximum(stack: StackRunner, minimum: str, maximum: str) -> None:
    """Requests: nine survivors hold 7,900 at 878 each (at most 920), so ten kept running would do.
    CPU: 9.25 vCPUs on at most 80 % of survivors of 1 vCPU need ceil(9.25 / 0.8) = 12 of them, so
    thirteen (twelve would leave 11 survivors at 84 %). At thirteen each takes 739 requests, and the
    autoscaler aims at 60 %: ceil(7,900 / (0.6 x 739)) = 18 for the requests, ceil(9.25 / 0.6) = 16
    for the CPU, so at least eighteen at most. One refusal says both, whichever is short."""
    with pytest.raises(SettingsError, match=r"voicefleet:maxConcurrentSessions .*set dispatcherMinInstances to at "
                                            r"least 13 and dispatcherMaxInstances to at least 18 \(got "
                                            rf"{minimum} and {maximum}\)"):
        with_channel(stack, "gcp", **{**PROD_CHANNELS, "dispatcherMinInstances": minimum,
                                      "dispatcherMaxInstances": maximum})


def test_the_refusal_counts_the_survivors_cpu_for_the_relayed_audio(stack: StackRunner) -> None:
    # min 12: 11 survivors hold ceil(7,900 / 11) + 80 = 799 requests each (under 1,000), and 11
    # vCPUs would relay 2,500 sessions' audio (9.25 vCPUs, docs/performance.md), but at 84 % of
    # them, past the 80 % that leaves the rest to the API, the pings and garbage collection.
    with pytest.raises(SettingsError, match=r"9\.25 vCPUs .*the audio on at most 80% of it"):
        with_channel(stack, "gcp", **{**PROD_CHANNELS, "dispatcherMinInstances": "12"})


def test_gce_template_carries_the_url_and_no_reference_to_the_deployment_secret(gcp_channel: Run) -> None:
    (template,) = gcp_channel.of_type(TEMPLATE)
    metadata = template.inputs["metadata"]
    assert metadata[contract.GCE_CHANNEL_URL_METADATA_KEY] == GCP_URL
    assert "BOT_CHANNEL_TOKEN" not in metadata[contract.GCE_SECRETS_METADATA_KEY]


def test_gce_bot_account_cannot_read_the_channels_deployment_secret(gcp_channel: Run) -> None:
    bot = "serviceAccount:vf-gcp-test-bot@vf-test.iam.gserviceaccount.com"
    readable = [r for r in gcp_channel.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
                if r.inputs["member"] == bot]
    assert not [r for r in readable if r.inputs["secretId"].endswith("bot-channel-token")]


@pytest.mark.parametrize("url", ["wss://vf.example/bots/channel", ""])
def test_startup_script_writes_the_channel_url_into_the_env_file_only_when_set(tmp_path: Any, url: str) -> None:
    # The script's own lines, with the metadata server replaced by a shell function.
    fragment = re.search(r"\nCHANNEL_URL=[^\n]*\nif [^\n]*\n", STARTUP_SCRIPT)
    assert fragment is not None
    env_file = tmp_path / "bot.env"
    script = (f"set -euo pipefail\nENV_FILE={env_file}\n: > $ENV_FILE\n"
              f"md() {{ [ -n \"{url}\" ] && [ \"$1\" = bot-channel-url ] && printf %s \"{url}\"; }}\n"
              + fragment.group(0))
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    assert env_file.read_text() == (f"BOT_CHANNEL_URL={url}\n" if url else "")


def test_the_ping_interval_the_settings_check_is_the_bots() -> None:
    from bot.channel_client import PING_INTERVAL_SECONDS as BOT_PING

    assert BOT_PING == PING_INTERVAL_SECONDS


@pytest.mark.parametrize(("cloud", "overrides", "key"), [
    ("aws", {"allowPlainHttp": "true", "certificateArn": "", "dispatcherDomain": ""}, "voicefleet:botChannel "),
    ("aws", {"dispatcherDomain": ""}, "voicefleet:dispatcherDomain"),
    ("aws", {"dispatcherDomain": "Voice.Example.COM"}, "voicefleet:dispatcherDomain"),
    ("aws", {"albIdleTimeoutSeconds": "10"}, "voicefleet:albIdleTimeoutSeconds"),
    ("gcp", {"maxSessionSeconds": "2700"}, "voicefleet:maxSessionSeconds"),
    ("gcp", {"maxConcurrentSessions": "911"}, "voicefleet:maxConcurrentSessions"),
])
def test_a_channel_the_stack_cannot_serve_is_refused_naming_the_key(stack: StackRunner, cloud: str,
                                                                   overrides: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        with_channel(stack, cloud, **overrides)


@pytest.mark.parametrize("off", ["false", "False", "FALSE"])
def test_the_channel_turned_off_beside_a_token_is_refused_however_false_is_spelt(stack: StackRunner, off: str) -> None:
    """botChannel reads `False` as false (Reader.boolean), so the refusal of a token beside it must too:
    else the token silently turns on the channel the stack says is off."""
    with pytest.raises(SettingsError, match="voicefleet:botChannel is false but botChannelToken is set"):
        with_channel(stack, "gcp", botChannel=off)


def test_a_short_token_is_refused(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="voicefleet:botChannelToken must be at least 32"):
        stack("gcp", secrets={**SECRETS, "voicefleet:botChannelToken": "SENTINEL-short-token"}, **CHANNEL["gcp"])


def test_a_turn_relay_without_the_channel_is_refused(stack: StackRunner) -> None:
    secrets = {**SECRETS, "voicefleet:turnSharedSecret": "SENTINEL-turn-shared-secret-0123"}
    with pytest.raises(SettingsError, match="voicefleet:botChannel must be true with a TURN relay"):
        stack("gcp", secrets=secrets, turn="managed")


def test_every_resource_has_its_own_urn_with_the_channel_and_both_bots(stack: StackRunner) -> None:
    """The engine refuses two resources of one type and name; the mocks do not, so check here (the
    Daily and the WebRTC bot each grant their execution role the channel secret)."""
    run = with_channel(stack, "aws", turn="managed", **{"voicefleet:turnSharedSecret": "SENTINEL-turn-0123456789ab"})
    keys = [(r.type, r.name) for r in run.registrations]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_aws_dispatcher_knows_the_bots_task_role_and_that_role_may_do_nothing(aws_channel: Run) -> None:
    """Bots prove their task with a GetCallerIdentity presigned by their task role (docs/security.md):
    the dispatcher is told that role, and the role still has no policy (GetCallerIdentity needs none)."""
    (bot_task,) = [r for r in aws_channel.of_type("aws:iam/role:Role") if r.name.endswith("-bot-task")]
    assert env_of(container(aws_channel, "-dispatcher"))["ECS_BOT_TASK_ROLE_ARNS"] == unwrap(bot_task.outputs["arn"])
    policies = aws_channel.of_type("aws:iam/rolePolicy:RolePolicy") + aws_channel.of_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not [p.name for p in policies if bot_task.name in p.name and "execution" not in p.name]
