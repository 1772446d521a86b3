"""A stack's cloud, `size` and `profile` derive the keys it leaves unset; a key it sets wins; a key nobody
reads is refused with the nearest real one (the example stacks stay short: test_stack_key_count.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from dispatcher.settings.derived import PROFILES, SIZES
from stacks.azure.dispatcher import SECRETS_DIGEST_VARIABLE
from stacks.config.channel import risen_instances
from stacks.config.derived import STACK_PROFILES, STACK_SIZES, derived, derived_keys, markdown_table, sized
from stacks.config.derived_explain import explain
from stacks.config.reader import DEFAULTS
from stacks.config.settings import SettingsError
from stacks.shared import contract
from tests.infra.config.test_dashboard import CONTRACT, plain_environment
from tests.infra.config.test_settings import pulumi_yaml_defaults
from tests.infra.conftest import CHANNEL, StackRunner, config_for
from tests.infra.helpers import ROOT

BOT_TASK = "aws:ecs/taskDefinition:TaskDefinition"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_a_size_derives_the_machines_and_a_profile_the_retention(stack: StackRunner) -> None:
    run = stack("aws", size="medium", profile="prod", **CHANNEL["aws"])  # prod turns the channel on: HTTPS
    task = run.one(BOT_TASK, "voicefleet-aws-test-bot")
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("1024", "2048")
    assert {group.inputs["retentionInDays"] for group in run.of_type(LOG_GROUP)} == {90}
    assert any(reg.protect for reg in run.registrations)


def test_without_size_or_profile_the_defaults_hold(stack: StackRunner) -> None:
    run = stack("aws")
    assert run.one(BOT_TASK, "voicefleet-aws-test-bot").inputs["cpu"] == "512"
    assert {group.inputs["retentionInDays"] for group in run.of_type(LOG_GROUP)} == {14}
    assert not any(reg.protect for reg in run.registrations)


def test_a_key_set_wins_over_its_derived_value(stack: StackRunner) -> None:
    run = stack("aws", size="medium", profile="prod", **CHANNEL["aws"], botCpu="512", botMemory="1024",
                logRetentionDays="30")
    assert run.one(BOT_TASK, "voicefleet-aws-test-bot").inputs["cpu"] == "512"
    assert {group.inputs["retentionInDays"] for group in run.of_type(LOG_GROUP)} == {30}


def test_the_clis_project_defaults_leave_the_derivation_alone(stack: StackRunner) -> None:
    """`pulumi up` hands every declared default as if set: a derived key's is "" (unset)."""
    given = config_for("aws", {}, None)
    defaults = {key: value for key, value in pulumi_yaml_defaults().items() if f"voicefleet:{key}" not in given}
    run = stack("aws", **{**defaults, "size": "medium", "profile": "prod", **CHANNEL["aws"]})
    assert run.one(BOT_TASK, "voicefleet-aws-test-bot").inputs["cpu"] == "1024"


def test_a_misspelt_key_is_refused_with_the_nearest_name(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("aws", reserveMaxIdel="3")
    assert "voicefleet:reserveMaxIdel is no stack key: did you mean reserveMaxIdle?" in str(caught.value)


def test_a_documented_key_read_as_an_object_is_no_misspelling(stack: StackRunner) -> None:
    """`tags` (docs/pulumi.md: `pulumi config set --path tags.team voice`) is read as an object, not
    through a typed read: it must still count as read, or every stack that sets it is refused."""
    run = stack("aws", tags='{"team": "voice"}')
    provider = run.one("pulumi:providers:aws", "voicefleet-aws-test")
    assert json.loads(provider.inputs["defaultTags"])["tags"]["team"] == "voice"


def test_an_unknown_size_names_the_key_and_the_choices(stack: StackRunner) -> None:
    with pytest.raises(SettingsError) as caught:
        stack("aws", size="huge")
    assert "voicefleet:size must be one of small, medium, large" in str(caught.value)


def test_sizes_and_profiles_are_the_dispatchers_own() -> None:
    assert set(STACK_SIZES) == set(SIZES) and set(STACK_PROFILES) == set(PROFILES)
    for size, values in SIZES.items():
        assert sized(size)["maxConcurrentSessions"] == values["MAX_CONCURRENT_SESSIONS"]
        assert sized(size)["reserveMaxIdle"] == values["RESERVE_MAX_IDLE"]
    # `small` is the defaults themselves, as for the dispatcher.
    assert {key: str(DEFAULTS[key]) for key in sized("small")} == sized("small")


def test_every_derived_key_is_one_the_program_reads() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert derived_keys() <= set(declared)


def test_prod_holds_the_image_and_keeps_no_buffer_only_where_every_cold_start_pulls_it() -> None:
    for cloud in ("aws", "gcp"):
        found = derived(None, "prod", cloud=cloud)
        assert (found["botImageBudgetMb"], found["reserveBuffer"]) == (("400", "profile"), ("0", "profile"))
    for cloud in ("azure", "k8s"):
        assert not {"botImageBudgetMb", "reserveBuffer"} & set(derived("large", "prod", cloud=cloud))


def test_large_runs_three_to_six_azure_replicas_and_k8s_always_the_channel() -> None:
    assert derived("large", None, cloud="azure")["dispatcherMinReplicas"] == ("3", "size")
    assert derived("large", None, cloud="azure")["dispatcherMaxReplicas"] == ("6", "size")
    assert "dispatcherMinReplicas" not in derived("large", None, cloud="aws")
    assert derived(None, None, cloud="k8s")["botChannel"] == ("true", "cloud")
    assert "botChannel" not in derived(None, None, cloud="aws")
    assert explain({"voicefleet:cloud": "k8s"})[1] == "derived from cloud k8s: botChannel=true"


def test_a_prod_stack_on_aws_gets_no_reserve_buffer_unless_it_sets_one(stack: StackRunner) -> None:
    assert plain_environment("aws", stack("aws", profile="prod", **CHANNEL["aws"]))["RESERVE_BUFFER"] == "0.0"
    run = stack("aws", profile="prod", reserveBuffer="0.1", **CHANNEL["aws"])
    assert plain_environment("aws", run)["RESERVE_BUFFER"] == "0.1"


def test_gcp_instances_rise_to_what_the_sessions_need_only_where_unset_and_too_few() -> None:
    assert risen_instances(2500, 400, 0, 3, min_set=False, max_set=False) == (13, 18)
    assert risen_instances(5, 2, 0, 3, min_set=False, max_set=False) == (0, 3)  # the defaults hold: kept
    assert risen_instances(2500, 400, 20, 3, min_set=True, max_set=False) == (20, 27)  # 20 share less each
    assert risen_instances(2500, 400, 2, 5, min_set=True, max_set=True) == (2, 5)  # set: cloud_run_limits refuses
    config = {"voicefleet:cloud": "gcp", "voicefleet:profile": "prod", "voicefleet:maxConcurrentSessions": "2500",
              "voicefleet:reserveMaxIdle": "400"}
    assert "derived from maxConcurrentSessions and reserveMaxIdle: dispatcherMinInstances=13, " \
           "dispatcherMaxInstances=18" in explain(config)
    assert not any("dispatcherMinInstances" in line for line in explain({**config, "voicefleet:botChannel": "false"}))


def test_the_pages_table_is_the_derivation_table() -> None:
    page = (ROOT / "docs" / "pulumi.md").read_text()
    block = page.split("<!-- derived-table:", 1)[1].split("-->", 1)[1].split("<!-- /derived-table -->", 1)[0]
    assert block.strip() == markdown_table().strip(), "paste `python -m stacks.config.derived` into docs/pulumi.md"


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_prod_stack_hands_the_dispatcher_its_profile(stack: StackRunner, cloud: str) -> None:
    """And the bot channel the profile turns on (its token the stack's own), so the warm reserve."""
    env = plain_environment(cloud, stack(cloud, profile="prod", **CHANNEL.get(cloud, {})))
    assert env["VOICEFLEET_PROFILE"] == "prod"
    channel = {*contract.CHANNEL_ENV, *(contract.ECS_CHANNEL_ENV if cloud == "aws" else ())}
    assert set(env) - set(CONTRACT[cloud]) - {SECRETS_DIGEST_VARIABLE} == {*contract.PROFILE_ENV, *channel}
    assert "VOICEFLEET_PROFILE" not in plain_environment(cloud, stack(cloud, profile="dev"))
