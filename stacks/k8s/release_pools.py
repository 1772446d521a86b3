"""The agent-sandbox mode's pools per release: a SandboxTemplate and a SandboxWarmPool for each kept release.

The contract is docs/kubernetes.md, "Pools per release" (the dispatcher's side:
dispatcher/machines/k8s/release_pools.py): each release's template and pool are named
`<K8S_WARM_POOL>-<release>` and labelled `voicefleet.io/release=<release>`, the pool `Recreate`; the
dispatcher finds them by the label and writes only the pool's `spec.replicas` (through `scale`), so the
stack creates each pool at 0 and ignores its size afterwards (stacks/k8s/warm_pool.py).

The releases are the stack's own memory, as the GCP stack keeps a template or job per release
(stacks/shared/release_builds.py: its last `releaseBuilds` output rolled forward with this `up`'s bot
image, `releasesKept` listed). A release that leaves the list is *retiring*: it keeps its template and
pool until its last session can have ended (`longest_bot_seconds` after the `up` that dropped it), then
the first `up` after that deletes them. Its sessions' claims name that pool, and the claim controller
turns a bound claim whose pool or template is gone to Ready=False `WarmPoolNotFound`/`TemplateNotFound`
at its next pass (agent-sandbox `reconcileActive`: a claim with `additionalPodMetadata`, as every
claim here, needs its template even on the adopted-Sandbox path), which the dispatcher reads as a
failed machine; and a bot of that release that dials again is admitted only while a pool's template
names its image. The RELEASES the dispatcher gets are the listed ones alone, so no start takes a
retiring release, and a retiring release's pool (not its template) is labelled `voicefleet.io/retiring`: the
dispatcher that no longer lists it empties the pool (its warm pods would hold nodes and the bots' quota
until the pool goes). Every release's pod is this `up`'s bot pod with that release's image: the stack's
other settings are every release's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pulumi

from dispatcher.machines.k8s.pods import LABEL_RELEASE
from dispatcher.machines.k8s.provider import DEADLINE_SLACK_SECONDS
from dispatcher.releases.catalogue import ANY_TRANSPORT
from stacks.k8s.dispatcher import ROLLOUT_MARGIN_SECONDS, grace_seconds
from stacks.k8s.warm_pool import WarmPool, WarmPoolArgs
from stacks.shared.release_builds import Build, Builds, kept_whatever_is_built

RELEASE_POOL_REPLICAS = 0  # at creation: the dispatcher's planner sizes each release's pool


def release_pool_name(warm_pool: str, release: str) -> str:
    """`<K8S_WARM_POOL>-<release>`: the template's and its pool's name (a release name is DNS-safe, 32 at most)."""
    return f"{warm_pool}-{release}"


def longest_bot_seconds(max_session_seconds: int) -> int:
    """How long after the `up` that drops a release a session of it may still run: the old dispatcher's
    replicas start sessions of it until the rollout replaces them (the Deployment's update wait: each old
    replica's grace, the session cap and its start, and the rollout's margin, stacks/k8s/dispatcher.py
    `rollout_wait`), and a session started last runs to its claim's hard end (the cap plus a minute)."""
    return grace_seconds(max_session_seconds) + ROLLOUT_MARGIN_SECONDS + max_session_seconds + DEADLINE_SLACK_SECONDS


def release_image(release: Build) -> str:
    """The bot image a release's pods run: its one reference, the image by digest."""
    return release.images[ANY_TRANSPORT]


def release_pools(name: str, before: pulumi.Output[Builds], builds: pulumi.Output[Builds], *, now: datetime,
                  life: int, warm_pool: str, namespace: pulumi.Input[str],
                  pod_for: Callable[[str], pulumi.Input[dict[str, Any]]],
                  egress: list[dict[str, Any]], labels: Mapping[str, str], after: tuple[pulumi.Resource, ...],
                  parent: pulumi.Resource) -> pulumi.Output[list[str]]:
    """Each listed and retiring release's template and pool; the pools' names, once they exist (what the
    dispatcher's RELEASES waits for, so no release is offered before its pool). The releases the last `up`
    kept (`before`) that this one keeps whatever it builds are declared from `before` alone, known at a
    preview (`life`, `now`: as `builds` was advanced with); only this `up`'s new build waits for `builds`."""
    def declare(release: Build, retiring: pulumi.Input[bool]) -> pulumi.Output[str]:
        return WarmPool(f"{name}-release-{release.name}", WarmPoolArgs(
            name=release_pool_name(warm_pool, release.name), namespace=namespace,
            pod_template=pod_for(release_image(release)), egress=egress, replicas=RELEASE_POOL_REPLICAS,
            labels={**labels, LABEL_RELEASE: release.name}, after=after, retiring=retiring),
            opts=pulumi.ResourceOptions(parent=parent)).pool_name

    def retiring(release: str) -> pulumi.Output[bool]:
        return builds.apply(lambda kept: release in names(kept.retiring))

    def remembered_pools(found: Builds) -> pulumi.Output[list[str]]:
        return pulumi.Output.all(*(declare(release, retiring(release.name))
                                   for release in kept_whatever_is_built(found, life, now)))

    def new_pools(found: list[Any]) -> pulumi.Output[list[str]]:
        earlier, kept = names(kept_whatever_is_built(found[0], life, now)), found[1]
        if lost := earlier - names(kept.kept):  # kept_whatever_is_built and `advance` disagree: a bug, not config
            raise AssertionError(f"releases {sorted(lost)} were declared kept before the build was known, then dropped")
        return pulumi.Output.all(*(declare(release, release in kept.retiring) for release in kept.kept
                                   if release.name not in earlier))

    early: pulumi.Output[list[str]] = before.apply(remembered_pools)
    late: pulumi.Output[list[str]] = pulumi.Output.all(before, builds).apply(new_pools)
    return pulumi.Output.all(early, late).apply(lambda found: sorted(map(str, [*found[0], *found[1]])))


def names(releases: tuple[Build, ...]) -> set[str]:
    return {release.name for release in releases}
