"""ECR's lifecycle rules and the releases they must keep: the rules' shape against ECR's grammar
("Lifecycle policy properties"), and ECR's expiry replayed over successive `up`s, each a bot build
(an index with its platform manifests and a cache, or one manifest and a cache) that the stack
lists as a release, until every listed release's image, and every manifest a pull of it reads,
is shown to survive."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from images.component import RELEASE_TAG_PREFIX, REVISION_TAG_PREFIX
from stacks.aws.registry import UNTAGGED_PER_BUILD
from stacks.config.releases import IMAGE_MARGIN
from stacks.tools.mocks import Run, unwrap
from stacks.tools.preflight import ecr_lifecycle
from stacks.tools.preflight import releases as preflight
from tests.infra.conftest import StackRunner

KEPT, RETENTION = 3, 5  # the default releasesKept, and the least imageRetentionCount it allows
UPS = 12
# The rules before releases were tagged: two untagged images per build, as if a build were one manifest.
TWO_PER_BUILD = {"rules": [
    {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": [REVISION_TAG_PREFIX],
                                      "countType": "imageCountMoreThan", "countNumber": RETENTION},
     "action": {"type": "expire"}},
    {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                      "countNumber": 2 * RETENTION}, "action": {"type": "expire"}}]}


@pytest.fixture
def run(stack: StackRunner) -> Run:
    return stack("aws", imageRetentionCount=str(RETENTION), releasesKept=str(KEPT))


def bot_policy(run: Run) -> dict[str, Any]:
    (policy,) = [reg for reg in run.of_type(preflight.LIFECYCLE) if reg.name.endswith("-bot")]
    parsed: dict[str, Any] = json.loads(unwrap(policy.inputs)["policy"])
    return parsed


def test_the_rules_follow_ecr_s_grammar_and_keep_releases_by_their_tag(run: Run) -> None:
    rules = bot_policy(run)["rules"]
    priorities = [rule["rulePriority"] for rule in rules]
    # Unique, and ascending: ECR returns the rules sorted by priority, and the provider then shows an
    # unsorted policy as changed on every `up` (pulumi-aws ecr.LifecyclePolicy, its second note).
    assert priorities == sorted(set(priorities))
    first = min(rules, key=lambda rule: rule["rulePriority"])
    assert first["selection"] == {"tagStatus": "tagged", "tagPrefixList": [RELEASE_TAG_PREFIX],
                                  "countType": "imageCountMoreThan", "countNumber": RETENTION}
    for rule in rules:
        selection = rule["selection"]
        assert rule["action"] == {"type": "expire"} and selection["countType"] == "imageCountMoreThan"
        # "If you specify tagged, then you must also specify a tagPrefixList [or tagPatternList] value.
        # If you specify untagged, then you must omit tagPrefixList."
        assert bool(selection.get("tagPrefixList")) == (selection["tagStatus"] == "tagged")
    prefixes = [p for rule in rules for p in rule["selection"].get("tagPrefixList", [])]
    assert len(prefixes) == len(set(prefixes))  # "a unique set of tag prefixes"
    (untagged,) = [rule for rule in rules if rule["selection"]["tagStatus"] == "untagged"]
    assert untagged["selection"]["countNumber"] == UNTAGGED_PER_BUILD * RETENTION


def replay(policy: dict[str, Any], ups: int, platforms: int) -> tuple[list[ecr_lifecycle.Image], set[str]]:
    """One `up` a day, each a new bot build listed as a release; ECR's expiry runs after each, and
    what it deletes stays gone. Platform manifests are expired as if ECR did not tie them to their
    index (undocumented either way)."""
    gone: set[str] = set()
    for day in range(ups):
        images = [i for i in ecr_lifecycle.history(day + 1, platforms=platforms, releases=True) if i.digest not in gone]
        gone |= ecr_lifecycle.expired(policy, images, today=day + 1)
        startable = range(max(0, day + 1 - KEPT - IMAGE_MARGIN), day + 1)  # listed, and the two dropped last
        lost = {d for d in startable if ecr_lifecycle.pulled(images, f"build-{d}") & gone}
        if lost:
            return images, gone
    return ecr_lifecycle.history(ups, platforms=platforms, releases=True), gone


@pytest.mark.parametrize("platforms", ecr_lifecycle.PLATFORMS)
def test_every_listed_release_s_image_and_its_manifests_survive(run: Run, platforms: int) -> None:
    images, gone = replay(bot_policy(run), UPS, platforms)
    for day in range(UPS - KEPT - IMAGE_MARGIN, UPS):
        assert not ecr_lifecycle.pulled(images, f"build-{day}") & gone, (day, sorted(gone))
    assert "build-0" in gone  # bounded: a release past the margin goes


def test_counting_two_images_a_build_loses_an_older_release_s_platform_manifests() -> None:
    """What the rules were: a two-platform build leaves two platform manifests and its cache untagged
    (its index too, before releases were tagged), so counting two a build keeps the untagged parts of
    too few builds: a release just dropped, which a dispatcher being replaced may still start, lost its own."""
    images, gone = replay(TWO_PER_BUILD, UPS, platforms=2)
    last = max(int(i.digest.split("-")[1]) for i in images if i.digest.startswith("build-"))
    startable = range(last + 1 - KEPT - IMAGE_MARGIN, last + 1)
    assert any(ecr_lifecycle.pulled(images, f"build-{d}") & gone for d in startable)


def test_the_preflight_refuses_rules_that_count_two_images_a_build(run: Run) -> None:
    policies = run.of_type(preflight.LIFECYCLE)
    assert ecr_lifecycle.violations(policies, keep=RETENTION) == []
    old = [dataclasses.replace(reg, inputs={**reg.inputs, "policy": json.dumps(TWO_PER_BUILD)}) for reg in policies]
    assert any("2 platform(s)" in v for v in ecr_lifecycle.violations(old, keep=RETENTION))
    # The releases' own rule: the listed releases and the margin, with every manifest they name.
    assert preflight.violations(run.registrations, kept=KEPT) == []
    others = [reg for reg in run.registrations if reg.type != preflight.LIFECYCLE]
    (refused,) = preflight.violations([*others, *old], kept=KEPT)
    assert "(2 platform(s))" in refused and f"newest {KEPT + IMAGE_MARGIN} bot builds" in refused
