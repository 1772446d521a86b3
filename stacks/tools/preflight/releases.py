"""What a kept release needs on AWS to start again after later `up`s: its task definition revision
still ACTIVE, and its image still in ECR.

- An ECS task definition accepts only tag updates; any other change replaces it
  (terraform-provider-aws internal/service/ecs/task_definition.go: `resourceTaskDefinitionUpdate`
  "Tags only"), and the replaced revision is deregistered unless `skip_destroy` is set
  (`resourceTaskDefinitionDelete`: "Retaining ECS Task Definition Revision" with it,
  `DeregisterTaskDefinition` without). A deregistered (INACTIVE) revision cannot start new tasks
  (ECS API reference, DeregisterTaskDefinition), so without `skip_destroy` the second release would
  leave the first, still listed in `RELEASES`, unable to start.
- ECR expires by count (stacks/tools/preflight/ecr_lifecycle.py replays ECR's documented rules):
  the newest `releasesKept` bot builds, plus the margin stacks/config/releases.py IMAGE_MARGIN keeps
  for a release just dropped, must survive a replayed history of deploys, each with every manifest
  a pull of it reads (a multi-platform build's platform manifests are untagged images of their own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from stacks.config.releases import IMAGE_MARGIN, VARIABLE
from stacks.tools.mocks import Registration, unwrap
from stacks.tools.preflight import ecr_lifecycle

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def listed(registrations: Iterable[Registration]) -> list[dict[str, object]]:
    """The releases the dispatcher's task definition lists in `RELEASES` (none: no dispatcher, or no releases)."""
    for reg in registrations:
        if reg.type != TASK_DEFINITION:
            continue
        for container in json.loads(unwrap(reg.inputs)["containerDefinitions"]):
            for entry in container.get("environment", []):
                if entry["name"] == VARIABLE:
                    releases: list[dict[str, object]] = json.loads(entry["value"])["releases"]
                    return releases
    return []


def _family(arn: str) -> str:
    return arn.rsplit("/", 1)[-1].split(":", 1)[0]


def violations(registrations: Iterable[Registration], kept: int) -> list[str]:
    """`kept`: the stack's releasesKept."""
    registered = list(registrations)
    families = {_family(str(ref)) for release in listed(registered)
                for ref in dict(release["images"]).values()}  # type: ignore[call-overload]
    found = [f"{reg.name}: the task definition of family {unwrap(reg.inputs)['family']} is listed in {VARIABLE} "
             "without skipDestroy, so the next release deregisters this revision and a session of it can no "
             "longer start (INACTIVE revisions run no new task): set skip_destroy=True"
             for reg in registered
             if reg.type == TASK_DEFINITION and unwrap(reg.inputs)["family"] in families
             and not unwrap(reg.inputs).get("skipDestroy")]
    if not families:
        return found
    needed = kept + IMAGE_MARGIN
    days = needed + 5
    for reg in registered:
        if reg.type != LIFECYCLE or not ecr_lifecycle.tags_releases(reg):
            continue
        policy = json.loads(unwrap(reg.inputs)["policy"])
        platforms, lost = ecr_lifecycle.lost_builds(policy, days, needed, releases=True)
        if lost:
            found.append(f"{reg.name}: after {days} days of deploys ({platforms} platform(s)) the lifecycle policy "
                         f"expires part of {len(lost)} of the newest {needed} bot builds: releasesKept {kept} and a "
                         f"margin of {IMAGE_MARGIN}, whose sessions would pull a deleted image; "
                         "raise imageRetentionCount")
    return found
