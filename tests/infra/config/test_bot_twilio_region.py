"""The stack's Twilio region reaches its bots (stacks/config/bot_plain_env.py): a bot built on Pipecat's runner
hangs its call up through Twilio's REST API at TWILIO_REGION and TWILIO_EDGE's host, so every cloud's bot gets
both, in plain, where it gets the observability settings; on k8s the dispatcher tells each pod it makes. A stack
without them gives its bots nothing new, and a botSecrets entry of the same name is refused at preview."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.machines.k8s.settings import K8sSettings
from stacks.config.bot_env_reads import provided
from stacks.config.model import Settings
from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.azure.test_launch_policy import GROUPS, launched, rule
from tests.infra.azure.test_launch_policy import settings as aci_settings
from tests.infra.config.test_settings import error
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, K8S_STACK_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container
from tests.infra.k8s.conftest import container_env
from tests.support.azure_policy import denies

REGION = {"twilioRegion": "ie1", "twilioEdge": "dublin"}
SET = {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"}
TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"


def twilio(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name in SET}


def ecs_bot_env(run: Run) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run, "-bot")["environment"]}


def test_aws_the_bots_task_definition_carries_the_region_and_nothing_else_changes(stack: StackRunner) -> None:
    before, after = ecs_bot_env(stack("aws")), ecs_bot_env(stack("aws", **REGION))
    assert twilio(before) == {} and after == {**before, **SET}


def gce_settings(run: Run) -> str:
    (template,) = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    return str(unwrap(template.inputs["metadata"])[contract.GCE_SETTINGS_METADATA_KEY])


def test_gcp_the_bots_instance_template_carries_the_region_and_nothing_else_changes(stack: StackRunner) -> None:
    before, after = gce_settings(stack("gcp")), gce_settings(stack("gcp", **REGION))
    assert "TWILIO_" not in before
    assert after == ",".join(sorted([*before.split(","), "TWILIO_EDGE=dublin", "TWILIO_REGION=ie1"]))


def job_env(run: Run) -> dict[str, str]:
    (job,) = run.of_type("gcp:cloudrunv2/job:Job")
    (bot,) = job.inputs["template"]["template"]["containers"]
    return {e["name"]: e["value"] for e in bot["envs"] if "value" in e}


def test_gcp_the_cloud_run_bot_job_carries_the_region_and_nothing_else_changes(stack: StackRunner) -> None:
    def run(**region: str) -> Run:
        return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, botRuntime="cloudrun", **CHANNEL["gcp"], **region)

    before, after = job_env(run()), job_env(run(**REGION))
    assert twilio(before) == {} and after == {**before, **SET}


def test_azure_the_bots_container_groups_carry_the_region_which_the_launch_policy_admits(stack: StackRunner) -> None:
    before, after = aci_settings(stack("azure")), stack("azure", **REGION)
    aci = aci_settings(after)
    assert twilio(dict(before.bot_settings)) == {} and dict(aci.bot_settings) == {**before.bot_settings, **SET}
    plain = {v["name"]: v["value"] for v in launched(after)["properties"]["containers"][0]["properties"]
             ["environmentVariables"] if "value" in v}
    assert twilio(plain) == SET  # what the dispatcher sends for a session, with the stack's settings
    assert not denies(rule(after), GROUPS, launched(after))


def k8s_dispatcher_settings(run: Run) -> K8sSettings:
    env = {name: entry["value"] for name, entry in container_env(run).items() if "value" in entry}
    return K8sSettings.from_env({**env, "K8S_API_URL": "https://kubernetes.default.svc"})


def test_k8s_the_dispatcher_tells_its_bot_pods_the_region(stack: StackRunner) -> None:
    """Its pods are the dispatcher's (tests/dispatcher/machines/test_k8s_twilio_region.py: each it makes carries
    them): the stack gives it the two variables it reads for its own calls, and nothing when unset."""
    before = k8s_dispatcher_settings(stack("k8s", secrets=K8S_STACK_SECRETS))
    after = k8s_dispatcher_settings(stack("k8s", secrets=K8S_STACK_SECRETS, **REGION))
    assert dict(before.twilio_region) == {} and dict(after.twilio_region) == SET


def pool_env(run: Run) -> dict[str, Any]:
    (template, *_) = run.of_type(TEMPLATE)
    (bot,) = unwrap(template.inputs)["spec"]["podTemplate"]["spec"]["containers"]
    return {entry["name"]: entry.get("value") for entry in bot["env"]}


def test_k8s_the_agent_sandbox_pools_pod_template_carries_the_region(stack: StackRunner) -> None:
    def run(**region: str) -> Run:
        return stack("k8s", secrets=K8S_STACK_SECRETS, k8sMode="agent-sandbox",
                     k8sDeployer="ci-deployer@example-project.iam.gserviceaccount.com", **region)

    before, after = pool_env(run()), pool_env(run(**REGION))
    assert twilio(before) == {} and after == {**before, **SET}


@pytest.mark.parametrize("name", ["TWILIO_REGION", "TWILIO_EDGE"])
def test_a_bot_secret_of_the_same_name_is_refused_naming_both_keys(stack: StackRunner, name: str) -> None:
    bot_secrets = {"voicefleet:botSecrets": json.dumps({name: "SENTINEL-bot-region"})}
    message = error(stack, "aws", secrets={**SECRETS, **bot_secrets}, **REGION)
    key = "twilioRegion" if name == "TWILIO_REGION" else "twilioEdge"
    assert f"voicefleet:botSecrets sets {name}, which voicefleet:{key} sets too" in message
    assert f"pulumi config rm --path 'botSecrets.{name}'" in message and "SENTINEL" not in message


def test_a_bot_secret_of_the_name_is_the_bots_own_while_the_stack_sets_no_region(
        stack_settings: Any) -> None:
    read: Settings = stack_settings("aws", secrets={**SECRETS, "voicefleet:botSecrets": json.dumps(
        {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"})})
    assert set(read.secrets.bot) == set(SET)


def test_the_bots_reads_of_the_region_count_as_provided_once_the_stack_sets_it(stack_settings: Any) -> None:
    assert not set(SET) & provided(stack_settings("aws"))
    assert set(SET) <= provided(stack_settings("aws", **REGION))


def test_the_bots_get_the_region_spelt_as_the_dispatcher_reads_it(stack: StackRunner) -> None:
    """A key spelt `IE1`/`Dublin` gives the bots what the dispatcher reads (setting_choice: `ie1`, `dublin`), as
    the k8s dispatcher tells its pods: a respelt key is no change to the bots."""
    assert twilio(ecs_bot_env(stack("aws", twilioRegion="IE1", twilioEdge="Dublin"))) == SET


def test_beside_the_stacks_auth_token_a_bot_hangs_up_with_an_api_key_of_pipecats_names(
        stack: StackRunner, stack_settings: Any) -> None:
    """What docs/phone.md tells a stack outside US1 that takes Twilio's webhooks (twilioAuthToken): the bots'
    TWILIO_AUTH_TOKEN is refused beside it (one secret store, one value per name), so they take an API key
    under the names Pipecat's runner reads, TWILIO_API_KEY and TWILIO_API_SECRET, with the account's SID."""
    token = {"voicefleet:twilioAuthToken": "SENTINEL-phone-0123456789abcdef0123456789abcdef"}
    bot_key = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_KEY": "SK" + "0" * 32, "TWILIO_API_SECRET": "s"}
    read: Settings = stack_settings("aws", secrets={**SECRETS, **token,
                                                    "voicefleet:botSecrets": json.dumps(bot_key)}, **REGION)
    assert {*bot_key, *SET} <= provided(read)
    with_token = json.dumps({**bot_key, "TWILIO_AUTH_TOKEN": "SENTINEL-bot-token"})
    refused = error(stack, "aws", secrets={**SECRETS, **token, "voicefleet:botSecrets": with_token}, **REGION)
    assert "botSecrets sets TWILIO_AUTH_TOKEN, which voicefleet:twilioAuthToken sets too" in refused
