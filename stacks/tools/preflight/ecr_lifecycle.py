"""ECR lifecycle policies, evaluated the way ECR documents it, against a stack's own push history.

ECR ("Lifecycle policy properties" and "How lifecycle policies work"): rules apply from the lowest
`rulePriority` up; an image whose tags match a rule's `tagStatus` (and prefixes) is decided by that
rule alone and cannot be expired by a later one; `imageCountMoreThan` keeps the newest N of the
images the rule's tag selection matches, `sinceImagePushed` expires those older than N days.

Each build pushes an image tagged `latest` (the previous build becomes untagged) and re-tags the
registry cache `buildcache`. Each deploy with a source revision also pushes an index tagged
`rev-<revision>` (images/component.py), also a deploy that rebuilt nothing: the replay has one
build and two revision-only deploys a day (docs or stack changes). What must survive: the newest
`keep` builds, because the dispatcher's circuit breaker rolls back to the previous task definition
and the bot family's older revisions name older digests; the current cache; and the newest `keep`
revision tags, while older ones go (else they pile up). The check replays `keep + 5` days.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from images.component import REVISION_TAG_PREFIX
from stacks.tools.mocks import Registration, unwrap


@dataclass(frozen=True)
class Image:
    digest: str
    pushed_day: float  # a later deploy of the same day pushes a fraction later
    tags: tuple[str, ...]


REVISIONS_PER_BUILD = 3  # deploys a day, one of them a build


def history(days: int, *, revisions_per_build: int = REVISIONS_PER_BUILD) -> list[Image]:
    """`days` days of deploys: each day one build (untagged once the next is `latest`; caches
    likewise) and `revisions_per_build` deploys pushing a revision index."""
    images = []
    for day in range(days):
        last = day == days - 1
        images.append(Image(f"build-{day}", day, ("latest",) if last else ()))
        images.append(Image(f"cache-{day}", day, ("buildcache",) if last else ()))
        images += [Image(f"index-{day}-{n}", day + (n + 1) / (revisions_per_build + 1),
                         (f"{REVISION_TAG_PREFIX}{day}-{n}",)) for n in range(revisions_per_build)]
    return images


def _matches(selection: dict[str, object], image: Image) -> bool:
    status = selection.get("tagStatus")
    if status == "untagged":
        return not image.tags
    if status == "tagged":
        prefixes = [str(p) for p in selection.get("tagPrefixList") or []]  # type: ignore[attr-defined]
        return bool(image.tags) and any(t.startswith(p) for t in image.tags for p in prefixes or [""])
    return status == "any"


def expired(policy: dict[str, object], images: list[Image], today: int) -> set[str]:
    rules = sorted(policy["rules"], key=lambda rule: int(rule["rulePriority"]))  # type: ignore[call-overload]
    decided: dict[str, dict[str, object]] = {}
    for image in images:
        for rule in rules:
            if _matches(rule["selection"], image):
                decided[image.digest] = rule
                break
    gone: set[str] = set()
    for rule in rules:
        selection = rule["selection"]
        matched = sorted((i for i in images if _matches(selection, i)), key=lambda i: i.pushed_day, reverse=True)
        if selection["countType"] == "imageCountMoreThan":
            candidates = matched[int(selection["countNumber"]):]
        else:  # sinceImagePushed, in days
            candidates = [i for i in matched if today - i.pushed_day > int(selection["countNumber"])]
        gone |= {i.digest for i in candidates if decided.get(i.digest) is rule}
    return gone


def violations(registrations: Iterable[Registration], keep: int) -> list[str]:
    """`keep`: the stack's imageRetentionCount, the builds (and revision tags) it promises to keep."""
    found = []
    days = keep + 5
    images = history(days)
    indexes = sorted((i for i in images if i.digest.startswith("index-")), key=lambda i: i.pushed_day)
    for reg in registrations:
        if reg.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
            continue
        policy = json.loads(unwrap(reg.inputs)["policy"])
        gone = expired(policy, images, today=days + 1)
        lost = [f"build-{day}" for day in range(days - keep, days) if f"build-{day}" in gone]
        if lost or f"cache-{days - 1}" in gone:
            found.append(f"{reg.type} {reg.name}: after {days} days of deploys (one build and {REVISIONS_PER_BUILD} "
                         f"revision tags a day) the policy expires {len(lost)} of the newest {keep} builds or the "
                         "current cache (a rollback or an older task definition revision would pull a deleted "
                         "image); revision indexes and untagged builds need rules of their own")
        if any(i.digest in gone for i in indexes[-keep:]) or not any(i.digest in gone for i in indexes[:-keep]):
            found.append(f"{reg.type} {reg.name}: the policy does not keep exactly the newest {keep} revision tags "
                         f"({REVISION_TAG_PREFIX}<revision>): they are lost, or they pile up without bound")
    return found
