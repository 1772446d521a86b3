"""The ECR replay (stacks/tools/preflight/ecr_lifecycle.py) against ECR's own documented evaluation
("Lifecycle policy properties", "Examples of lifecycle policies"), and what it replays a repository as."""

from __future__ import annotations

import json
from typing import Any

from stacks.aws.registry import lifecycle_policy
from stacks.tools.mocks import Registration
from stacks.tools.preflight import ecr_lifecycle
from stacks.tools.preflight import releases as preflight
from stacks.tools.preflight.ecr_lifecycle import Image, expired


def rule(priority: int, **selection: Any) -> dict[str, Any]:
    return {"rulePriority": priority, "selection": {"countType": "imageCountMoreThan", **selection},
            "action": {"type": "expire"}}


def rules(*each: dict[str, Any]) -> dict[str, object]:
    return {"rules": list(each)}


def test_two_rules_decide_an_image_by_the_first_that_selects_it() -> None:
    """ECR's Example A: "Image A, Taglist: [beta-1, prod-1], Pushed: 10 days ago", B [beta-2, prod-2]
    9 days, C [beta-3] 8 days; rule 1 `prod` and rule 2 `beta`, each more than 1: only A goes, since
    B matches rule 1's tags and a later rule cannot expire it, though rule 2 still counts it."""
    images = [Image("A", 0, ("beta-1", "prod-1")), Image("B", 1, ("beta-2", "prod-2")), Image("C", 2, ("beta-3",))]
    policy = rules(rule(1, tagStatus="tagged", tagPrefixList=["prod"], countNumber=1),
                        rule(2, tagStatus="tagged", tagPrefixList=["beta"], countNumber=1))
    assert expired(policy, images, today=10) == {"A"}


def test_several_prefixes_select_only_an_image_carrying_all_of_them() -> None:
    """"If you specify multiple tags, only the images with all specified tags are selected.\""""
    images = [Image("release", 0, ("release-a",)), Image("revision", 1, ("rev-1",)),
              Image("both", 2, ("release-b", "rev-2"))]
    policy = rules(rule(1, tagStatus="tagged", tagPrefixList=["release-", "rev-"], countNumber=0))
    assert expired(policy, images, today=10) == {"both"}


def test_a_tag_pattern_selects_by_its_wildcard_alone() -> None:
    """`tagPatternList`: "image tag patterns that may contain wildcards (*)", all of them matched
    as prefixes are; a pattern without `*` is one exact tag, and `.` is no wildcard."""
    images = [Image("release", 0, ("release-a",)), Image("revision", 1, ("rev-1",)),
              Image("exact", 2, ("latest",)), Image("dotted", 3, ("latestx",))]
    patterns = rules(rule(1, tagStatus="tagged", tagPatternList=["release-*"], countNumber=0))
    assert expired(patterns, images, today=10) == {"release"}
    exact = rules(rule(1, tagStatus="tagged", tagPatternList=["latest"], countNumber=0))
    assert expired(exact, images, today=10) == {"exact"}
    both = rules(rule(1, tagStatus="tagged", tagPatternList=["rel*", "*-1"], countNumber=0))
    assert expired(both, [*images, Image("two", 4, ("release-1",))], today=10) == {"two"}


def policy(repository: str, body: dict[str, object]) -> Registration:
    return Registration(urn=f"urn:{repository}", type=preflight.LIFECYCLE, name=repository,
                        inputs={"repository": repository, "policy": json.dumps(body)}, custom=True,
                        provider="", parent="", protect=False)


# Untagged counted as three a build: enough where each build's index carries its release tag (the
# bot), too few where a superseded index is untagged too (the dispatcher with two platforms).
THREE_A_BUILD = rules(rule(1, tagStatus="tagged", tagPrefixList=["rev-"], countNumber=5),
                           rule(2, tagStatus="untagged", countNumber=15))


def test_a_dispatcher_is_replayed_without_release_tags_whatever_the_stack_is_called() -> None:
    """A stack named `bot-dev` names its dispatcher's repository `voicefleet-bot-dev-dispatcher`: its
    builds carry no `release-` tag, so the replay must not lend them one."""
    for repository in ("voicefleet-aws-dev-dispatcher", "voicefleet-bot-dev-dispatcher"):
        assert ecr_lifecycle.violations([policy(repository, THREE_A_BUILD)], keep=5), repository
    assert ecr_lifecycle.violations([policy("voicefleet-bot-dev-bot", THREE_A_BUILD)], keep=5) == []
    assert ecr_lifecycle.violations([policy("voicefleet-bot-dev-dispatcher", json.loads(lifecycle_policy(5)))],
                                    keep=5) == []
    assert [ecr_lifecycle.tags_releases(policy(f"voicefleet-bot-dev-{role}", THREE_A_BUILD))
            for role in ("bot", "bot-webrtc", "dispatcher")] == [True, True, False]
