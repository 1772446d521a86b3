"""Releases on AWS: successive `up`s of one stack under mocks that remember what each left (the
stack's outputs, each task definition family's revisions, the bot's builds; stacks/tools/mocks.py
Deployed). A changed bot adds a release beside the old ones; an unchanged one changes nothing."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from typing import Any

import pytest

from images.component import RELEASE_TAG_PREFIX
from stacks.aws.registry import lifecycle_policy
from stacks.config.settings import SettingsError
from stacks.tools.mocks import Deployed, Run, run_program, unwrap
from stacks.tools.preflight import releases as preflight
from tests.infra.config.test_regions import AWS_REGIONS, REGION_SECRET
from tests.infra.conftest import CHANNEL, SECRETS, StackRunner, config_for
from tests.infra.helpers import actions, component_outputs, container, policy_statements
from tests.infra.test_turn_server import run_with_turn

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
BOT = "arn:aws:ecs:eu-west-1:123456789012:task-definition/voicefleet-aws-test-bot:{}"


def up(deployed: Deployed, secrets: dict[str, str] | None = None, **overrides: str) -> Run:
    """One `pulumi up` of aws-test: the run reads what `deployed` holds, then leaves its own outputs there."""
    config = config_for("aws", overrides, secrets)
    run = run_program(config, [key for key in config if key in (secrets or SECRETS)], stack="aws-test",
                      deployed=deployed)
    deployed.record(run)
    return run


def releases(run: Run) -> dict[str, Any]:
    variables = {e["name"]: e["value"] for e in container(run, "-dispatcher")["environment"]}
    listed: dict[str, Any] = json.loads(variables["RELEASES"])
    assert component_outputs(run, "aws")["releases"] == variables["RELEASES"]  # what the next `up` reads back
    return listed


@pytest.fixture(scope="module")
def history() -> list[Run]:
    """First `up`; the same again; then three changed bots, with releasesKept 3 and a 25 % canary."""
    deployed = Deployed()
    runs = [up(deployed, canaryPercent="25"), up(deployed, canaryPercent="25")]
    for build in (1, 2, 3):
        deployed.bot_build = build
        runs.append(up(deployed, canaryPercent="25"))
    return runs


def test_the_first_up_lists_one_release_its_task_definition_revision(history: list[Run]) -> None:
    first = releases(history[0])
    (release,) = first["releases"]
    assert release["images"] == {"*": BOT.format(1)}  # the ARN with its revision: exactly what it launches
    assert re.fullmatch(r"r-[0-9a-f]{10}", release["name"]) and first["canaryPercent"] == 25
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", release["created"])


def test_a_second_up_with_nothing_changed_changes_nothing(history: list[Run]) -> None:
    first, second = history[0], history[1]
    assert releases(second) == releases(first)
    before = {reg.urn: unwrap(reg.inputs) for reg in first.registrations}
    after = {reg.urn: unwrap(reg.inputs) for reg in second.registrations}
    assert after == before  # no input of any resource differs: no diff, no replacement


def test_a_changed_bot_adds_a_release_and_keeps_the_old_one_startable(history: list[Run]) -> None:
    listed = releases(history[2])["releases"]
    assert [r["images"]["*"] for r in listed] == [BOT.format(1), BOT.format(2)]
    assert listed[0] == releases(history[0])["releases"][0]  # the old release, unchanged
    assert listed[1]["name"] != listed[0]["name"]
    bot = history[2].one(TASK_DEFINITION, "voicefleet-aws-test-bot")
    assert unwrap(bot.inputs)["skipDestroy"] is True  # its replacement leaves revision 1 ACTIVE


def test_beyond_releases_kept_the_oldest_is_dropped(history: list[Run]) -> None:
    listed = releases(history[4])["releases"]
    assert [r["images"]["*"] for r in listed] == [BOT.format(n) for n in (2, 3, 4)]
    before = [r["name"] for r in releases(history[3])["releases"]]
    assert [r["name"] for r in listed] == [*before[1:], listed[-1]["name"]] and listed[-1]["name"] not in before


def test_every_release_s_definition_is_one_the_drain_deregisters(history: list[Run]) -> None:
    """Destroy: a replaced revision outlives the state (skip_destroy); the drain before a destroy
    deregisters every ACTIVE revision of the families in machinesEnvironment (stacks/tools/drain.py)."""
    outputs = component_outputs(history[4], "aws")
    families = {outputs["machinesEnvironment"]["ECS_TASK_DEFINITION"]}
    for release in releases(history[4])["releases"]:
        assert {ref.rsplit("/", 1)[-1].split(":")[0] for ref in release["images"].values()} <= families


def test_the_dispatcher_may_start_every_listed_release(history: list[Run]) -> None:
    run_task = [statement for statement in policy_statements(history[4]) if "ecs:RunTask" in actions(statement)]
    allowed = [resource for statement in run_task for resource in
               ([statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"])]
    for release in releases(history[4])["releases"]:
        for ref in release["images"].values():
            assert any(fnmatch.fnmatchcase(ref, pattern) for pattern in allowed), (ref, allowed)


def test_the_preflight_passes_the_program_and_refuses_what_would_lose_a_release(history: list[Run]) -> None:
    registrations = history[4].registrations
    assert preflight.violations(registrations, kept=3) == []
    bot = history[4].one(TASK_DEFINITION, "voicefleet-aws-test-bot")
    retired = dataclasses.replace(bot, inputs={**bot.inputs, "skipDestroy": False})
    others = [reg for reg in registrations if reg is not bot]
    assert any("without skipDestroy" in v for v in preflight.violations([*others, retired], kept=3))
    short = [dataclasses.replace(reg, inputs={**reg.inputs, "policy": lifecycle_policy(3)})
             if reg.type == preflight.LIFECYCLE else reg for reg in registrations]
    assert any("newest 5 bot builds" in v for v in preflight.violations(short, kept=3))


def test_the_smallwebrtc_bot_is_a_reference_of_the_same_release(stack: StackRunner) -> None:
    run = run_with_turn(stack, "aws")
    (release,) = releases(run)["releases"]
    assert release["images"] == {"*": BOT.format(1), "webrtc": BOT.replace("-bot:", "-bot-webrtc:").format(1)}


def test_a_named_release_is_never_given_another_bot() -> None:
    deployed = Deployed()
    assert [r["name"] for r in releases(up(deployed, release="spring"))["releases"]] == ["spring"]
    deployed.bot_build = 1
    with pytest.raises(SettingsError, match=r"voicefleet:release = 'spring' is already a release"):
        up(deployed, release="spring")
    assert [r["name"] for r in releases(up(deployed, release="summer"))["releases"]] == ["spring", "summer"]


def test_a_new_name_for_a_listed_bot_is_refused() -> None:
    """Two names for the same task definitions would split one bot's sessions and health between a
    "canary" and its stable twin, and the dispatcher counts an idle bot by its image under the first."""
    deployed = Deployed()
    (first,) = releases(up(deployed))["releases"]
    with pytest.raises(SettingsError, match=rf"already listed as '{first['name']}'"):
        up(deployed, release="spring")
    deployed.bot_build = 1
    assert [r["name"] for r in releases(up(deployed, release="spring"))["releases"]] == [first["name"], "spring"]


def test_with_regions_a_release_added_beside_others_needs_a_name_every_region_shares() -> None:
    """One traffic spans the regions and names releases; a derived name hashes this region's ARNs
    (region, account, revision), so each region would list the same bot under another name and a
    weight set in one region would be dropped in the others (docs/regions.md)."""
    deployed, secrets = Deployed(), {**SECRETS, "voicefleet:regionSecret": REGION_SECRET}
    regional = {**CHANNEL["aws"], "region": "eu", "regions": AWS_REGIONS}
    (first,) = releases(up(deployed, secrets, **regional))["releases"]
    assert releases(up(deployed, secrets, **regional))["releases"] == [first]  # nothing added: nothing refused
    deployed.bot_build = 1
    with pytest.raises(SettingsError, match=r"voicefleet:release is unset in a stack with regions"):
        up(deployed, secrets, **regional)
    assert [r["name"] for r in releases(up(deployed, secrets, release="spring", **regional))["releases"]] == [
        first["name"], "spring"]


@pytest.mark.parametrize(("key", "value", "says"), [
    ("releasesKept", "0", "must be at least 1"),
    ("releasesKept", "11", "must be at most 10"),
    ("canaryPercent", "101", "must be at most 100"),
    ("canaryPercent", "-1", "must be at least 0"),
    ("release", "Spring_2", "lowercase letters, digits and dashes"),
    ("imageRetentionCount", "4", "fewer than the 5 that releasesKept 3 needs"),
])
def test_bad_release_settings_name_the_key(stack: StackRunner, key: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        stack("aws", **{key: value})
    assert f"voicefleet:{key}" in str(refused.value) and says in str(refused.value), refused.value


def test_the_release_s_bot_images_carry_its_tag_and_a_new_release_re_tags(history: list[Run]) -> None:
    """ECR keeps the newest releases' images by `release-<name>` (stacks/aws/registry.py): each `up`
    tags the bot image its release's task definition pins; a new release moves the one resource to
    its own tag, and the old tag stays in the registry (retain_on_delete)."""
    tags = []
    for run in (history[0], history[2]):
        (index,) = [reg for reg in run.of_type("docker-build:index:Index") if reg.name.endswith("-bot-release")]
        image = container(run, "-bot")["image"]
        assert unwrap(index.inputs)["sources"] == [image] and index.retain_on_delete
        tags.append(unwrap(index.inputs)["tag"])
        assert tags[-1] == f"{image.split('@')[0]}:{RELEASE_TAG_PREFIX}{releases(run)['releases'][-1]['name']}"
    assert tags[0] != tags[1]
