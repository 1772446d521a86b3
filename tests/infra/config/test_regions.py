"""A regional stack's `region`, `regions` and `regionSecret`: the dispatcher gets REGION and REGIONS
in its environment (with the planner's `regionSpillBudgetMs` and `regionHoldForNeighbours`) and
REGION_SECRET by reference, and the stack refuses at preview what the
dispatcher would refuse at start-up, plus a listed URL that is not this stack's own."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from dispatcher.regions.config import VARIABLES
from stacks.config.reader import SettingsError
from stacks.shared import contract
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL, CHANNEL_DOMAIN, SECRETS, StackRunner
from tests.infra.helpers import component_outputs, container

REGION_SECRET = "SENTINEL-region-secret-0123456789abcdef"  # noqa: S105 - a test sentinel
GCP_URL = "https://voicefleet-gcp-test-dispatcher-210987654321.europe-west4.run.app"  # the mocks' project number
AWS_REGIONS = f"eu=https://{CHANNEL_DOMAIN},us=https://us.voice.example.com"


def aws_regions(stack: StackRunner, secret: str = REGION_SECRET, **overrides: str) -> Run:
    config = {**CHANNEL["aws"], "region": "eu", "regions": AWS_REGIONS, **overrides}
    return stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": secret}, **config)


def gcp_regions(stack: StackRunner, **overrides: str) -> Run:
    config = {"dispatcherMinInstances": "1", "region": "eu", "regions": f"eu={GCP_URL},us=https://us.voice.example.com",
              **overrides}
    return stack("gcp", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET}, **config)


def refusal(run: Callable[[], object]) -> str:
    with pytest.raises(SettingsError) as caught:
        run()
    return str(caught.value)


def test_the_contract_names_exactly_what_the_dispatcher_reads() -> None:
    assert set(contract.REGION_ENV + contract.REGION_SECRETS) == set(VARIABLES)
    assert contract.REGION_SECRETS == ("REGION_SECRET",)  # the secret by reference, never in plain environment


def test_aws_the_dispatcher_gets_its_region_every_regions_url_and_the_secret_by_reference(stack: StackRunner) -> None:
    run = aws_regions(stack)
    dispatcher = container(run, "-dispatcher")
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert env["REGION"] == "eu"
    assert env["REGIONS"] == f"eu=https://{CHANNEL_DOMAIN},us=https://us.voice.example.com"  # the canonical spelling
    assert "REGION_SECRET" in {s["name"] for s in dispatcher["secrets"]} and "REGION_SECRET" not in env
    keys = set(env) | {s["name"] for s in dispatcher["secrets"]}
    assert keys == set(contract.ECS_ENV + contract.DISPATCHER_SECRETS + contract.REGION_ENV + contract.REGION_SECRETS
                       + contract.REGION_PLANNER_ENV)
    holding = {r.type for r in run.registrations if REGION_SECRET in json.dumps(unwrap(r.inputs))}
    assert holding == {"aws:secretsmanager/secretVersion:SecretVersion"}
    assert "REGION_SECRET" not in {e["name"] for e in container(run, "-bot")["environment"]}


def test_a_map_of_regions_is_the_same_listing(stack: StackRunner) -> None:
    as_map = json.dumps({"us": "https://us.voice.example.com", "eu": f"https://{CHANNEL_DOMAIN}"})
    dispatcher = container(aws_regions(stack, regions=as_map), "-dispatcher")
    env = {e["name"]: e["value"] for e in dispatcher["environment"]}
    assert env["REGIONS"] == f"eu=https://{CHANNEL_DOMAIN},us=https://us.voice.example.com"


def test_a_single_region_stack_gets_none_of_it(stack: StackRunner) -> None:
    env = {e["name"] for e in container(stack("aws"), "-dispatcher")["environment"]}
    assert not (set(VARIABLES) | set(contract.REGION_PLANNER_ENV)) & env


def test_aws_the_planners_regional_settings_reach_the_dispatcher_the_dispatchers_defaults_unset(
        stack: StackRunner) -> None:
    default = {e["name"]: e["value"] for e in container(aws_regions(stack), "-dispatcher")["environment"]}
    assert (default["REGION_SPILL_BUDGET_MS"], default["REGION_HOLD_FOR_NEIGHBOURS"]) == ("100", "0")
    tuned = container(aws_regions(stack, regionSpillBudgetMs="40", regionHoldForNeighbours="true"), "-dispatcher")
    env = {e["name"]: e["value"] for e in tuned["environment"]}
    assert (env["REGION_SPILL_BUDGET_MS"], env["REGION_HOLD_FOR_NEIGHBOURS"]) == ("40", "1")


def test_gcp_the_planners_regional_settings_reach_cloud_run(stack: StackRunner) -> None:
    (service,) = gcp_regions(stack, regionSpillBudgetMs="0", regionHoldForNeighbours="true").of_type(
        "gcp:cloudrunv2/service:Service")
    envs = {e["name"]: e.get("value") for e in service.inputs["template"]["containers"][0]["envs"]}
    assert (envs["REGION_SPILL_BUDGET_MS"], envs["REGION_HOLD_FOR_NEIGHBOURS"]) == ("0", "1")


@pytest.mark.parametrize(("overrides", "key", "words"), [
    ({"regionSpillBudgetMs": "-5"}, "voicefleet:regionSpillBudgetMs", "must be at least 0"),
    ({"regionSpillBudgetMs": "fast"}, "voicefleet:regionSpillBudgetMs", "must be a whole number"),
    ({"regionHoldForNeighbours": "maybe"}, "voicefleet:regionHoldForNeighbours", "must be true or false"),
])
def test_a_planner_setting_the_dispatcher_would_refuse_is_refused_naming_its_key(
        stack: StackRunner, overrides: dict[str, str], key: str, words: str) -> None:
    message = refusal(lambda: aws_regions(stack, **overrides))
    assert key in message and words in message


def test_a_planner_setting_without_regions_is_refused_naming_its_key(stack: StackRunner) -> None:
    message = refusal(lambda: stack("aws", regionSpillBudgetMs="40"))
    assert "voicefleet:regionSpillBudgetMs" in message and "without region, regions and regionSecret" in message


def test_a_single_region_stack_previews_with_the_planner_defaults_pulumi_hands_it(stack: StackRunner) -> None:
    # `pulumi up` sets every unset key to its Pulumi.yaml default before the program runs
    # (pulumi/pulumi sdk/go/common/workspace: ValidateStackConfigAndApplyProjectConfig).
    stack("aws", regionSpillBudgetMs="100", regionHoldForNeighbours="false")


@pytest.mark.parametrize("value", ["inf", "nan", "40.5", "1e3"])
def test_a_spill_budget_that_is_not_whole_milliseconds_is_refused(stack: StackRunner, value: str) -> None:
    message = refusal(lambda: aws_regions(stack, regionSpillBudgetMs=value))
    assert "voicefleet:regionSpillBudgetMs" in message and "whole number" in message


@pytest.mark.parametrize(("overrides", "key", "words"), [
    ({"region": ""}, "voicefleet:region", "must be set with regions, regionSecret"),
    ({"regions": ""}, "voicefleet:regions", "must be set with region, regionSecret"),
    ({"region": "ap"}, "voicefleet:regions", "does not list this region"),
    ({"region": "EU"}, "voicefleet:region", "is not a region name"),
    ({"regions": f"eu=https://{CHANNEL_DOMAIN},us=http://us.voice.example.com"}, "voicefleet:regions", "must be https"),
    ({"regions": f"eu=https://{CHANNEL_DOMAIN},us=https://{CHANNEL_DOMAIN}"}, "voicefleet:regions", "the same URL"),
    ({"regions": "eu=https://elsewhere.example.com,us=https://us.voice.example.com"}, "voicefleet:regions",
     f"this stack's dispatcher is https://{CHANNEL_DOMAIN}"),
    ({"dispatcherDomain": "", "certificateArn": "", "allowPlainHttp": "true"}, "voicefleet:dispatcherDomain",
     "is required with regions"),
])
def test_what_the_dispatcher_would_refuse_is_refused_at_preview_naming_the_key(
        stack: StackRunner, overrides: dict[str, str], key: str, words: str) -> None:
    message = refusal(lambda: aws_regions(stack, **overrides))
    assert key in message and words in message


def test_a_short_or_plain_text_secret_is_refused(stack: StackRunner) -> None:
    assert "at least 32 characters" in refusal(lambda: aws_regions(stack, secret="short"))
    plain = refusal(lambda: stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET},
                                  plaintext=("voicefleet:regionSecret",), **CHANNEL["aws"], region="eu",
                                  regions=AWS_REGIONS))
    assert "voicefleet:regionSecret" in plain and "plain text" in plain
    alone = refusal(lambda: stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET},
                                  **CHANNEL["aws"]))
    assert "voicefleet:region " in alone and "must be set with regionSecret" in alone


def test_gcp_cloud_run_gets_the_region_the_secret_by_reference_and_a_readiness_probe(stack: StackRunner) -> None:
    run = gcp_regions(stack)
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    (main,) = service.inputs["template"]["containers"]
    envs = {e["name"]: e for e in main["envs"]}
    assert envs["REGION"]["value"] == "eu" and envs["REGIONS"]["value"].startswith(f"eu={GCP_URL},")
    assert "secretKeyRef" in envs["REGION_SECRET"]["valueSource"] and "value" not in envs["REGION_SECRET"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/healthz"
    outputs = component_outputs(run, "gcp")
    assert outputs["regionUrl"] == GCP_URL
    (plain,) = stack("gcp").of_type("gcp:cloudrunv2/service:Service")
    assert "readinessProbe" not in plain.inputs["template"]["containers"][0]


def test_gcp_a_url_that_is_not_this_services_is_refused(stack: StackRunner) -> None:
    other = "https://voicefleet-gcp-test-dispatcher-111111111111.europe-west4.run.app"
    message = refusal(lambda: gcp_regions(stack, regions=f"eu={other},us=https://us.voice.example.com"))
    assert "voicefleet:regions" in message and f"this stack's dispatcher is {GCP_URL}" in message


def test_gcp_regions_keep_an_instance_running(stack: StackRunner) -> None:
    message = refusal(lambda: gcp_regions(stack, dispatcherMinInstances="0"))
    assert "voicefleet:dispatcherMinInstances" in message and "at least 1 with regions" in message


ACCEPTED = "SENTINEL-region-accepted-0123456789abcdef"  # noqa: S105 - a test sentinel


def test_aws_during_a_change_the_accepted_secret_reaches_the_dispatcher_by_reference_only(stack: StackRunner) -> None:
    run = stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET,
                                "voicefleet:regionAcceptedSecret": ACCEPTED},
                **CHANNEL["aws"], region="eu", regions=AWS_REGIONS)
    dispatcher = container(run, "-dispatcher")
    assert "REGION_ACCEPTED_SECRET" in {s["name"] for s in dispatcher["secrets"]}
    assert "REGION_ACCEPTED_SECRET" not in {e["name"] for e in dispatcher["environment"]}
    holding = {r.type for r in run.registrations if ACCEPTED in json.dumps(unwrap(r.inputs))}
    assert holding == {"aws:secretsmanager/secretVersion:SecretVersion"}
    assert "REGION_ACCEPTED_SECRET" not in {e["name"] for e in container(run, "-bot")["environment"]}
    # Dropped at the change's last step, so its secret is never protected (a protected one would fail that `up`).
    assert "REGION_ACCEPTED_SECRET" in contract.REMOVABLE_SECRETS
    without = container(aws_regions(stack), "-dispatcher")
    assert "REGION_ACCEPTED_SECRET" not in {s["name"] for s in without["secrets"]}


def test_gcp_during_a_change_the_accepted_secret_reaches_cloud_run_by_reference_only(stack: StackRunner) -> None:
    run = stack("gcp", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET,
                                "voicefleet:regionAcceptedSecret": ACCEPTED},
                dispatcherMinInstances="1", region="eu", regions=f"eu={GCP_URL},us=https://us.voice.example.com")
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    envs = {e["name"]: e for e in service.inputs["template"]["containers"][0]["envs"]}
    accepted = envs["REGION_ACCEPTED_SECRET"]
    assert "secretKeyRef" in accepted["valueSource"] and "value" not in accepted
    holding = {r.type for r in run.registrations if ACCEPTED in json.dumps(unwrap(r.inputs))}
    assert holding == {"gcp:secretmanager/secretVersion:SecretVersion"}


def test_a_bad_accepted_secret_is_refused_naming_the_key(stack: StackRunner) -> None:
    def with_accepted(accepted: str, **config: str) -> Run:
        return stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET,
                                     "voicefleet:regionAcceptedSecret": accepted}, **CHANNEL["aws"], **config)

    regional = {"region": "eu", "regions": AWS_REGIONS}
    short = refusal(lambda: with_accepted("short", **regional))
    assert "voicefleet:regionAcceptedSecret" in short and "at least 32 characters" in short
    same = refusal(lambda: with_accepted(REGION_SECRET, **regional))
    assert "voicefleet:regionAcceptedSecret" in same and "is the same as regionSecret" in same
    alone = refusal(lambda: stack("aws", secrets={**SECRETS, "voicefleet:regionAcceptedSecret": ACCEPTED},
                                  **CHANNEL["aws"]))
    assert "voicefleet:regionAcceptedSecret" in alone and "without region" in alone
    plain = refusal(lambda: stack("aws", secrets={**SECRETS, "voicefleet:regionSecret": REGION_SECRET,
                                                  "voicefleet:regionAcceptedSecret": ACCEPTED},
                                  plaintext=("voicefleet:regionAcceptedSecret",), **CHANNEL["aws"], **regional))
    assert "voicefleet:regionAcceptedSecret" in plain and "plain text" in plain
