"""The Pulumi CLI's config checks (stacks/tools/preflight/cli_config.py) on Pulumi.yaml and every example stack.

Rules from pulumi/pulumi 1b5949891b3c: pkg/workspace/config.go `mergeConfig` and
`validateStackConfigValue`, sdk/go/common/workspace/project.go `Project.Validate` and
`ValidateConfigValue`, sdk/go/common/workspace/project.json. The module cites the lines.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from stacks.tools.paths import stack_names
from stacks.tools.preflight.cli_config import StackValue, project_errors, stack_errors, stack_values
from stacks.tools.preflight.stack import documented_values, effective
from tests.infra.helpers import ROOT

STACKS = stack_names()


def project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


documented_stack = documented_values  # the stack file plus its header's `pulumi config set` lines


def test_the_project_file_passes_the_clis_own_validation() -> None:
    assert project_errors(project()) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_example_stack_previews_after_its_documented_secret_lines(stack: str) -> None:
    assert stack_errors(project(), stack, documented_stack(stack)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_alone_passes_the_clis_checks_so_a_front_door_needs_no_dispatcher_secret(stack: str) -> None:
    """A front door stack has no dispatcher to give DAILY_API_KEY or DISPATCHER_API_KEYS to: the CLI
    must not stop it for them. A regional stack without them is refused by the program, naming the
    key (tests/infra/config/test_settings.py)."""
    values = stack_values(yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text()))
    assert stack_errors(project(), stack, values) == []


def declarations_before_the_fix() -> dict[str, Any]:
    """A deliberately broken copy: Pulumi.yaml as review item 1 found it (optional keys with a type
    and no default, optional bot secrets typed `secret: true`)."""
    broken = copy.deepcopy(project())
    for key in ("sourceRevision", "certificateArn", "gcpZone"):
        broken["config"][key].pop("default")
    for key in ("deepgramApiKey", "cartesiaApiKey", "openaiApiKey"):
        broken["config"][key] = {"type": "string", "secret": True, "description": "bot key"}
    return broken


@pytest.mark.parametrize("stack", STACKS)
def test_review_item_1_the_old_declarations_stop_every_example_stack(stack: str) -> None:
    (error,) = stack_errors(declarations_before_the_fix(), stack, documented_stack(stack))
    assert error.startswith(f"Stack '{stack}' is missing configuration value(s)")
    missing = set(re.findall(r"'(\w+)'", error.split("value(s)")[1]))
    stack_sets = set(documented_stack(stack))
    expected = {k for k in ("sourceRevision", "certificateArn", "gcpZone", "deepgramApiKey", "cartesiaApiKey",
                            "openaiApiKey") if f"voicefleet:{k}" not in stack_sets}
    assert missing == expected


# --- the model itself, against the CLI's own test cases --------------------------------------------

SMALL = {"name": "test", "runtime": "python", "config": {
    "importantNumber": {"type": "integer", "secret": True},
    "size": {"type": "integer", "default": 1},
    "zones": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
    "flag": {"type": "boolean", "default": False},
}}


def test_secret_key_with_a_plain_stack_value_must_be_encrypted() -> None:  # TestStackConfigSecretIsCorrectlyValidated
    plain = {"test:importantNumber": StackValue("20")}
    assert stack_errors(SMALL, "dev", plain) == [
        "Stack 'dev' with configuration key 'importantNumber' must be encrypted as it's secret"]
    assert stack_errors(SMALL, "dev", {"test:importantNumber": StackValue("x", secure=True)}) == []


def test_missing_typed_key_without_default_is_named() -> None:  # TestStackConfigErrorsWhenMissing…NoDefault
    assert stack_errors(SMALL, "dev", {}) == ["Stack 'dev' is missing configuration value(s) 'importantNumber'"]


def test_typed_values_are_checked_with_the_clis_leniency() -> None:  # TestStackConfigIntegerTypeIsCorrectlyValidated
    secret = {"test:importantNumber": StackValue("x", secure=True)}
    assert stack_errors(SMALL, "dev", {**secret, "test:size": StackValue("42"), "test:flag": StackValue("true")}) == []
    assert stack_errors(SMALL, "dev", {**secret, "test:size": StackValue("4.5")}) == [
        "Stack 'dev' with configuration key 'size' must be of type 'integer'"]
    assert stack_errors(SMALL, "dev", {**secret, "test:zones": StackValue([1])}) == [
        "Stack 'dev' with configuration key 'zones' must be of type 'array'"]


def test_a_typed_secret_with_a_default_fails_every_stack_that_leaves_it_unset() -> None:
    """Why the optional bot secrets are untyped in Pulumi.yaml: the default is merged in plain."""
    optional_secret = {"name": "test", "runtime": "python",
                       "config": {"apiKey": {"type": "string", "secret": True, "default": ""}}}
    assert stack_errors(optional_secret, "dev", {}) == [
        "Stack 'dev' with configuration key 'apiKey' must be encrypted as it's secret"]
    untyped = {"name": "test", "runtime": "python", "config": {"apiKey": {"default": ""}}}
    assert stack_errors(untyped, "dev", {}) == []


def test_project_file_rules() -> None:
    bad = {"name": "test", "runtime": "python", "config": {
        "list": {"type": "array"},
        "both": {"type": "string", "default": "a", "value": "b"},
        "n": {"type": "integer", "default": "ten"},
        "aws:region": {"type": "string", "value": "x"},
        "gcp:project": {"default": "p"},
    }}
    errors = project_errors(bad)
    assert any("'list' declares an array" in e for e in errors)
    assert any("'both' cannot have both" in e for e in errors)
    assert any("'n' is not of the expected type" in e for e in errors)
    assert any("'aws:region' is not namespaced by the project and should not define a type" in e for e in errors)
    assert any("'gcp:project' is not namespaced by the project and should not define a default" in e for e in errors)


def test_the_preflight_reads_a_key_the_stacks_profile_derives() -> None:
    """aws-prod leaves imageRetentionCount to `profile: prod` (50): the ECR lifecycle check must hold the
    policy to the 50 builds the program keeps, not to the default 20."""
    values = documented_values("aws-prod")
    assert "voicefleet:imageRetentionCount" not in values
    assert effective(values, "imageRetentionCount") == "50"
    assert effective(values, "releasesKept") == "3"
    assert effective({**values, "voicefleet:imageRetentionCount": StackValue("30")}, "imageRetentionCount") == "30"
