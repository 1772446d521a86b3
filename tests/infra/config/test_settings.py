"""Bad configuration fails the whole program with one message naming the key."""

from __future__ import annotations

import json

import pytest
import yaml

from stacks.config.derived import derived_keys
from stacks.config.settings import DEFAULTS, SettingsError
from tests.infra.conftest import K8S_STACK_SECRETS, SECRETS, StackRunner, config_for
from tests.infra.helpers import ROOT


def error(stack: StackRunner, cloud: str, **kwargs: object) -> str:
    with pytest.raises(SettingsError) as caught:
        stack(cloud, **kwargs)
    return str(caught.value)


def test_unknown_cloud_names_the_key(stack: StackRunner) -> None:
    message = error(stack, "aws", **{"voicefleet:cloud": "oci"})
    assert "voicefleet:cloud" in message and "oci" in message


def test_negative_bot_cpu_names_the_key(stack: StackRunner) -> None:
    assert "voicefleet:botCpu" in error(stack, "aws", botCpu="-512")


def test_memory_outside_the_fargate_range_names_the_memory_key(stack: StackRunner) -> None:
    message = error(stack, "aws", botCpu="512", botMemory="512")
    assert "voicefleet:botMemory" in message and "1024, 2048, 3072, 4096" in message


def test_quarter_vcpu_takes_no_one_and_a_half_gigabytes(stack: StackRunner) -> None:
    """Fargate's 256 CPU size allows 512, 1024 and 2048 MiB only (review item 10)."""
    message = error(stack, "aws", botCpu="256", botMemory="1536")
    assert "voicefleet:botMemory" in message and "512, 1024, 2048" in message


def test_missing_required_secret_names_the_key_and_the_command(stack: StackRunner) -> None:
    secrets = {k: v for k, v in SECRETS.items() if k != "voicefleet:dailyApiKey"}
    message = error(stack, "aws", secrets=secrets)
    assert "voicefleet:dailyApiKey" in message and "--secret" in message


def test_secret_stored_in_plain_text_is_refused(stack: StackRunner) -> None:
    message = error(stack, "gcp", plaintext=("voicefleet:dispatcherApiKeys",))
    assert "voicefleet:dispatcherApiKeys" in message and "plain text" in message


def test_session_longer_than_compute_engine_allows_names_the_key(stack: StackRunner) -> None:
    message = error(stack, "gcp", maxSessionSeconds=str(121 * 24 * 3600))
    assert "voicefleet:maxSessionSeconds" in message and "120 days" in message


def test_keep_alive_not_longer_than_alb_idle_timeout_is_refused(stack: StackRunner) -> None:
    message = error(stack, "aws", albIdleTimeoutSeconds="60", keepAliveSeconds="60")
    assert "voicefleet:keepAliveSeconds" in message


def test_https_is_required_unless_plain_http_is_chosen(stack: StackRunner) -> None:
    assert "voicefleet:certificateArn" in error(stack, "aws", allowPlainHttp="false")


def test_missing_region_names_the_provider_key(stack: StackRunner) -> None:
    assert "gcp:region" in error(stack, "gcp", **{"gcp:region": " "})


def test_bot_provider_keys_are_all_or_none(stack: StackRunner) -> None:
    message = error(stack, "aws", deepgramApiKey="SENTINEL-deepgram")
    assert "voicefleet:cartesiaApiKey" in message and "all or none" in message


def test_log_retention_must_be_a_cloudwatch_period(stack: StackRunner) -> None:
    assert "voicefleet:logRetentionDays" in error(stack, "aws", logRetentionDays="10")


def test_one_message_not_a_traceback_of_errors(stack: StackRunner) -> None:
    message = error(stack, "aws", botCpu="-1", logRetentionDays="10")
    assert message.count("voicefleet:") == 1


def test_project_file_defaults_equal_the_settings_defaults() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = {key: spec["default"] for key, spec in declared.items()
                if isinstance(spec, dict) and "default" in spec and "type" in spec}
    assert defaults == {key: value for key, value in DEFAULTS.items() if key not in derived_keys()}


def test_derived_keys_are_untyped_with_an_empty_default() -> None:
    """The CLI hands the program every declared default as if the stack had set it: a derived key's
    default is "" (unset), or a size or profile could never derive it."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in derived_keys():
        assert declared[key] == {"description": declared[key]["description"], "default": ""}, key
        assert "derived from size or profile" in declared[key]["description"], key


def test_secrets_are_untyped_with_an_empty_default() -> None:
    """A typed secret with a default fails every stack that leaves it unset (the CLI merges the
    default in plain; tests/infra/tools/preflight/test_cli_config.py), and one without a default
    fails every stack without it, a front door stack included: so secrets are untyped, and the
    program requires the dispatcher's two in a regional stack."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in ("dailyApiKey", "dispatcherApiKeys", "regionSecret", "deepgramApiKey", "cartesiaApiKey",
                "openaiApiKey", "k8sRegistryPassword", "k8sRegistryPullPassword"):
        assert declared[key] == {"description": declared[key]["description"], "default": ""}, key


def test_optional_bot_secret_set_in_plain_text_is_refused(stack: StackRunner) -> None:
    keys = {k: "SENTINEL" for k in ("deepgramApiKey", "cartesiaApiKey", "openaiApiKey")}
    message = error(stack, "aws", plaintext=("voicefleet:deepgramApiKey",), **keys)
    assert "voicefleet:deepgramApiKey" in message and "plain text" in message


def test_a_cloudrun_bot_runtime_without_the_channel_is_refused(stack: StackRunner) -> None:
    """Without the channel a session's Daily token and body would sit in its execution's env overrides."""
    message = error(stack, "gcp", botRuntime="cloudrun")
    assert "voicefleet:botRuntime" in message and "botChannel true" in message


def pulumi_yaml_defaults() -> dict[str, str]:
    """What `pulumi up` gives the program for every key Pulumi.yaml declares with a default and the
    stack leaves unset (pulumi/pulumi sdk/go/common/workspace, ValidateStackConfigAndApplyProjectConfig):
    a scalar as `fmt.Sprintf("%v", default)`, an array or object as its JSON (createConfigValue)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]

    def handed(default: object) -> str:
        if isinstance(default, bool):
            return "true" if default else "false"
        return json.dumps(default) if isinstance(default, list | dict) else str(default)

    return {key: handed(spec["default"]) for key, spec in declared.items()
            if isinstance(spec, dict) and "default" in spec and ":" not in key}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "k8s"])
def test_a_stack_previews_with_every_default_pulumi_hands_it(stack: StackRunner, cloud: str) -> None:
    """The harness gives the program only what a test sets; the CLI also gives it every default."""
    secrets = K8S_STACK_SECRETS if cloud == "k8s" else None
    given = config_for(cloud, {}, secrets)
    stack(cloud, secrets=secrets,
          **{key: value for key, value in pulumi_yaml_defaults().items() if f"voicefleet:{key}" not in given})
