"""ECR lifecycle policies, evaluated the way ECR documents it, against a stack's own push history.

ECR ("Lifecycle policy properties" and "How lifecycle policies work"): rules apply from the lowest
`rulePriority` up; an image whose tags match a rule's `tagStatus` (and prefixes) is decided by that
rule alone and cannot be expired by a later one; `imageCountMoreThan` keeps the newest N of the
images the rule's tag selection matches, `sinceImagePushed` expires those older than N days.

Each deploy pushes a build tagged `latest` (the previous build becomes untagged) and re-tags the
registry cache `buildcache`. What must survive: the newest `keep` builds, because the dispatcher's
circuit breaker rolls back to the previous task definition and the bot family's older revisions
name older digests. The check replays `keep + 5` daily deploys and evaluates the policy after them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from stacks.tools.mocks import Registration, unwrap


@dataclass(frozen=True)
class Image:
    digest: str
    pushed_day: int
    tags: tuple[str, ...]


def history(builds: int) -> list[Image]:
    """`builds` daily deploys: build i untagged once build i+1 is `latest`; caches likewise."""
    images = []
    for day in range(builds):
        last = day == builds - 1
        images.append(Image(f"build-{day}", day, ("latest",) if last else ()))
        images.append(Image(f"cache-{day}", day, ("buildcache",) if last else ()))
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
    """`keep`: the stack's imageRetentionCount, the builds it promises to keep."""
    found = []
    for reg in registrations:
        if reg.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
            continue
        policy = json.loads(unwrap(reg.inputs)["policy"])
        wanted = keep
        builds = wanted + 5
        gone = expired(policy, history(builds), today=builds + 1)
        lost = [f"build-{day}" for day in range(builds - wanted, builds) if f"build-{day}" in gone]
        if lost:
            found.append(f"{reg.type} {reg.name}: after {builds} daily deploys the policy expires {len(lost)} of "
                         f"the newest {wanted} builds (a rollback or an older task definition revision would pull "
                         "a deleted image); an earlier rule takes the untagged, superseded builds first")
    return found
