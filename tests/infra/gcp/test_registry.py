"""Artifact Registry's cleanup policies replayed over a stack's own push history, the way Google
documents them ("Configure cleanup policies"): a version matching a KEEP policy stays even when a
DELETE policy matches it; `mostRecentVersions` keeps the newest `keepCount` versions of a package;
`olderThan` compares a version's age. Revision indexes (`rev-<revision>`) stay tagged for good, so
only a rule on their prefix ever removes them."""

from __future__ import annotations

from typing import Any

import pytest

from images.component import REVISION_TAG_PREFIX
from stacks.config.settings import SettingsError
from stacks.gcp.registry import REVISION_TAG_DAYS
from stacks.tools.mocks import unwrap
from stacks.tools.preflight.ecr_lifecycle import Image, history
from tests.infra.conftest import StackRunner

KEEP = 20
DAYS = REVISION_TAG_DAYS + 30


def _matches(condition: dict[str, Any], image: Image, today: float) -> bool:
    state = condition.get("tagState", "ANY")
    if (state == "TAGGED" and not image.tags) or (state == "UNTAGGED" and image.tags):
        return False
    prefixes = condition.get("tagPrefixes") or []
    if prefixes and not any(t.startswith(p) for t in image.tags for p in prefixes):
        return False
    older = condition.get("olderThan")
    return older is None or (today - image.pushed_day) * 86400 > int(str(older).removesuffix("s"))


def deleted(policies: list[dict[str, Any]], images: list[Image], today: float) -> set[str]:
    kept: set[str] = set()
    for policy in policies:
        if policy["action"] == "KEEP" and "mostRecentVersions" in policy:
            newest = sorted(images, key=lambda i: i.pushed_day, reverse=True)
            kept |= {i.digest for i in newest[:int(policy["mostRecentVersions"]["keepCount"])]}
    deleting = [p["condition"] for p in policies if p["action"] == "DELETE"]
    return {i.digest for i in images if i.digest not in kept and any(_matches(c, i, today) for c in deleting)}


def replay(policies: list[dict[str, Any]], days: int) -> tuple[list[Image], set[str]]:
    """Day by day: each day's pushes (and re-tags), then the cleanup; what it deletes stays gone."""
    gone: set[str] = set()
    for day in range(days):
        images = [i for i in history(day + 1) if i.digest not in gone]
        gone |= deleted(policies, images, day + 0.99)
    return history(days), gone


def test_old_revision_tags_go_and_the_newest_builds_stay(stack: StackRunner) -> None:
    run = stack("gcp", imageRetentionCount=str(KEEP))
    (repository,) = run.of_type("gcp:artifactregistry/repository:Repository")
    policies = unwrap(repository.inputs)["cleanupPolicies"]
    images, gone = replay(policies, DAYS)
    last = DAYS - 1
    revisions = [i for i in images if any(t.startswith(REVISION_TAG_PREFIX) for t in i.tags)]
    today = last + 0.99  # the replay's last cleanup
    old = {i.digest for i in revisions if today - i.pushed_day > REVISION_TAG_DAYS}
    recent = {i.digest for i in revisions if today - i.pushed_day < REVISION_TAG_DAYS}
    assert old and old <= gone  # they no longer pile up
    assert not recent & gone
    newest = sorted(images, key=lambda i: i.pushed_day, reverse=True)[:KEEP]
    assert not {i.digest for i in newest} & gone  # KEEP wins over every DELETE
    assert {f"build-{last}", f"cache-{last}"}.isdisjoint(gone)


def test_a_build_for_more_than_linux_amd64_is_refused(stack: StackRunner) -> None:
    """Two platforms make each build an index of untagged platform manifests; the keep-releases rule
    names the index by digest, and `drop-untagged` would match its manifests a day later."""
    with pytest.raises(SettingsError, match=r"voicefleet:platforms.*must be \['linux/amd64'\] on gcp"):
        stack("gcp", platforms='["linux/amd64", "linux/arm64"]')
    with pytest.raises(SettingsError, match=r"voicefleet:platforms"):
        stack("gcp", platforms='["linux/arm64"]')
    assert stack("gcp", platforms='["linux/amd64"]').of_type("gcp:artifactregistry/repository:Repository")
