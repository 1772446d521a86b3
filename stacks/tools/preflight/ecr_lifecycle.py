"""ECR lifecycle policies, evaluated the way ECR documents it, against a stack's own push history.

ECR ("Lifecycle policy properties" and "How lifecycle policies work"): rules apply from the lowest
`rulePriority` up; an image whose tags match a rule's `tagStatus` (and prefixes or patterns, every
one of them matching one of its tags) is decided by that rule alone and cannot be expired by a later
one, which still counts it; `imageCountMoreThan` keeps the newest N of the
images the rule's tag selection matches, `sinceImagePushed` expires those older than N days.

Each build pushes an image tagged `latest` (the previous build becomes untagged) and re-tags the
registry cache `buildcache`. With two platforms the image is an index and each platform's manifest
an untagged image of its own, which ECR counts like any other (aws/containers-roadmap#2613); the
replay assumes the worst, that ECR may expire such a manifest while its index stays. A bot build
is a release, tagged `release-<name>` (images/component.py tag_release: for one platform an index
naming the manifest, for two the build's index itself). Each deploy with a source revision also
pushes an index tagged `rev-<revision>`, also a deploy that rebuilt nothing: the replay has one
build and two revision-only deploys a day (docs or stack changes). What must survive: the newest
`keep` builds with every manifest they name, because the dispatcher's circuit breaker rolls back to
the previous task definition and the bot family's older revisions name older digests; the current
cache; and the newest `keep` revision tags, while older ones go (else they pile up). The check
replays `keep + 5` days, with one platform and with two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from images.component import DOCKERFILES, RELEASE_TAG_PREFIX, REVISION_TAG_PREFIX
from stacks.tools.mocks import Registration, unwrap


@dataclass(frozen=True)
class Image:
    digest: str
    pushed_day: float  # a later deploy of the same day pushes a fraction later
    tags: tuple[str, ...]
    parts: tuple[str, ...] = ()  # an index's platform manifests: a pull of it needs them too


REVISIONS_PER_BUILD = 3  # deploys a day, one of them a build
PLATFORMS = (1, 2)  # what `platforms` allows: linux/amd64, linux/arm64, or both


def history(days: int, *, revisions_per_build: int = REVISIONS_PER_BUILD, platforms: int = 1,
            releases: bool = False) -> list[Image]:
    """`days` days of deploys: each day one build (untagged once the next is `latest`; caches
    likewise) and `revisions_per_build` deploys pushing a revision index. `build-<day>` is what a
    task definition pins: with one platform a manifest, with more an index of `build-<day>-<n>`.
    `releases`: a bot repository, where each build is a release and carries its tag."""
    images = []
    for day in range(days):
        last = day == days - 1
        release = (f"{RELEASE_TAG_PREFIX}{day}",) if releases else ()
        latest = ("latest",) if last else ()
        if platforms == 1:
            images.append(Image(f"build-{day}", day, latest))
            images += [Image(f"release-{day}", day, release, (f"build-{day}",))] if releases else []
        else:
            parts = tuple(f"build-{day}-{n}" for n in range(platforms))
            images += [Image(part, day, ()) for part in parts]
            images.append(Image(f"build-{day}", day, latest + release, parts))
        images.append(Image(f"cache-{day}", day, ("buildcache",) if last else ()))
        images += [Image(f"index-{day}-{n}", day + (n + 1) / (revisions_per_build + 1),
                         (f"{REVISION_TAG_PREFIX}{day}-{n}",)) for n in range(revisions_per_build)]
    return images


def pulled(images: list[Image], digest: str) -> set[str]:
    """What a pull of `digest` reads: it and, for an index, its platform manifests."""
    (image,) = (i for i in images if i.digest == digest)
    return {digest, *image.parts}


def _tag_filters(selection: dict[str, object]) -> list[re.Pattern[str]]:
    """A rule's tag filters as patterns: a prefix `p` is the pattern `p*`; in a `tagPatternList`
    `*` is ECR's only wildcard (any run of characters), every other character stands for itself."""
    prefixes = [f"{p}*" for p in selection.get("tagPrefixList") or []]  # type: ignore[attr-defined]
    patterns = [str(p) for p in selection.get("tagPatternList") or []]  # type: ignore[attr-defined]
    return [re.compile(".*".join(map(re.escape, p.split("*")))) for p in [*prefixes, *patterns]]


def _matches(selection: dict[str, object], image: Image) -> bool:
    status = selection.get("tagStatus")
    if status == "untagged":
        return not image.tags
    if status == "tagged":
        # "If you specify multiple tags, only the images with all specified tags are selected":
        # every prefix or pattern must match one of the image's tags (one tag may match several).
        return bool(image.tags) and all(any(p.fullmatch(t) for t in image.tags) for p in _tag_filters(selection))
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


def lost_builds(policy: dict[str, object], days: int, newest: int, *, releases: bool) -> tuple[int, list[int]]:
    """After `days` days of deploys, the days among the newest `newest` whose build lost a manifest
    a pull reads, with the first platform count (PLATFORMS) that loses any (none lost: the last)."""
    lost: list[int] = []
    for platforms in PLATFORMS:
        images = history(days, platforms=platforms, releases=releases)
        gone = expired(policy, images, today=days + 1)
        lost = [day for day in range(days - newest, days) if pulled(images, f"build-{day}") & gone]
        if lost or f"cache-{days - 1}" in gone:
            return platforms, lost or [days - 1]
    return PLATFORMS[-1], lost


# The roles whose images an `up` tags with its release (images/component.py tag_release).
RELEASE_ROLES = tuple(role for role in DOCKERFILES if role.startswith("bot"))


def tags_releases(reg: Registration) -> bool:
    """Whether the policy's repository holds the bot images an `up` tags with its release: its
    name ends in the role (`<prefix>-<role>`, stacks/aws/registry.py). Not `-bot` anywhere in the
    policy's name, which a stack named `bot-dev` puts in its dispatcher's too."""
    return str(unwrap(reg.inputs)["repository"]).endswith(tuple(f"-{role}" for role in RELEASE_ROLES))


def violations(registrations: Iterable[Registration], keep: int) -> list[str]:
    """`keep`: the stack's imageRetentionCount, the builds (and revision tags) it promises to keep."""
    found = []
    days = keep + 5
    for reg in registrations:
        if reg.type != "aws:ecr/lifecyclePolicy:LifecyclePolicy":
            continue
        policy = json.loads(unwrap(reg.inputs)["policy"])
        platforms, lost = lost_builds(policy, days, keep, releases=tags_releases(reg))
        if lost:
            found.append(f"{reg.type} {reg.name}: after {days} days of deploys (one build for {platforms} "
                         f"platform(s) and {REVISIONS_PER_BUILD} revision tags a day) the policy expires part of "
                         f"{len(lost)} of the newest {keep} builds or the current cache (a rollback or an older "
                         "task definition revision would pull a deleted image); releases, revision indexes "
                         "and untagged manifests need rules of their own")
        images = history(days)
        indexes = sorted((i for i in images if i.digest.startswith("index-")), key=lambda i: i.pushed_day)
        gone = expired(policy, images, today=days + 1)
        if any(i.digest in gone for i in indexes[-keep:]) or not any(i.digest in gone for i in indexes[:-keep]):
            found.append(f"{reg.type} {reg.name}: the policy does not keep exactly the newest {keep} revision tags "
                         f"({REVISION_TAG_PREFIX}<revision>): they are lost, or they pile up without bound")
    return found
