"""The GCP stack's releases: a definition per kept release, the RELEASES list, what the registry keeps.

Each kept release (stacks/shared/release_builds.py: listed, or retiring while a session may still run it)
gets its own definition from its own images: an instance template (botRuntime gce) or a Cloud Run
job (cloudrun), created from the remembered list (and this `up`'s build, once known). The dispatcher is
offered the listed ones (RELEASES), each with that definition for every transport (`*`): a
template carries both the Daily and the SmallWebRTC image (the VM picks by session), a job its one
image. The stack's other settings (machine type, secrets, channel) are every release's: changing
them replaces every kept release's template, or updates every job, under the same release names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pulumi

from dispatcher.releases.catalogue import ANY_TRANSPORT
from images.component import Images
from stacks.config.releases import ReleaseSettings, StackRelease, catalogue
from stacks.gcp.bot_job import BotJob
from stacks.gcp.bot_template import BOT_ROLE, WEBRTC_ROLE, BotTemplate
from stacks.shared.release_builds import Build, Builds, kept_whatever_is_built, unexpired


def bot_images(images: Images) -> pulumi.Output[dict[str, str]]:
    """This `up`'s build: the bot images by digest, by role."""
    built: dict[str, pulumi.Input[str]] = {BOT_ROLE: images.bot}
    if images.bot_webrtc is not None:
        built[WEBRTC_ROLE] = images.bot_webrtc
    return pulumi.Output.all(**built).apply(lambda found: {role: str(ref) for role, ref in found.items()})


def registry_keeps(before: Builds, longest_bot_seconds: int, now: datetime) -> list[str]:
    """The digests the registry keeps whatever its other rules say: every release the last `up` kept,
    the one it built (its current) included, but a retiring one no bot can run any more
    (stacks/gcp/registry.py). A tag does not keep the current build: `drop-old-revision-tags` matches
    any version with a `rev-` tag, `latest` beside it or not, and `mostRecentVersions` counts versions,
    caches and revision indexes among them, not builds. Taken from what the last `up` kept (an image's
    digest is only known once it is pushed, into this repository, after the repository's rules are
    declared), so a second `up` with no change asks for the same list; the build this `up` pushes is
    the newest version until the next `up` names it."""
    return unexpired(before, longest_bot_seconds, now).digests()


class Releases:
    """The kept releases' definitions, and what the dispatcher reads. The remembered releases this `up` keeps
    whatever it builds are defined from `before` (the last `up`'s builds), known at a preview; only this
    `up`'s new build waits for `builds`, whose digest a preview does not know (pulumi/pulumi#16140: a
    definition declared in an apply on an unknown value is missing from the preview, shown deleted)."""

    current: pulumi.Output[str]  # the current build's template or job path: GCE_INSTANCE_TEMPLATE, CLOUDRUN_JOB
    # The oldest listed release's: with cells, CLOUDRUN_JOB or GCE_INSTANCE_TEMPLATE (every cell holds it)
    oldest: pulumi.Output[str]
    document: pulumi.Output[str]  # RELEASES
    kept: pulumi.Output[list[str]]  # every kept release's template or job path, the retiring ones' too

    def __init__(self, before: pulumi.Output[Builds], builds: pulumi.Output[Builds], bot: BotTemplate | BotJob,
                 settings: ReleaseSettings, job_role: str = BOT_ROLE, *, now: datetime, life: int) -> None:
        def define(releases: Iterable[Build]) -> pulumi.Output[dict[str, str]]:
            paths = {b.name: bot.release_template(b) if isinstance(bot, BotTemplate)
                     else bot.release_job(b, b.images.get(job_role) or b.images[BOT_ROLE]) for b in releases}
            return pulumi.Output.all(*paths.values()).apply(
                lambda found: {name: str(path) for name, path in zip(paths, found, strict=True)})

        def define_new(found: list[Any]) -> pulumi.Output[dict[str, str]]:
            earlier = {b.name for b in kept_whatever_is_built(found[0], life, now)}
            return define(b for b in found[1].kept if b.name not in earlier)

        early: pulumi.Output[dict[str, str]] = before.apply(
            lambda found: define(kept_whatever_is_built(found, life, now)))
        late: pulumi.Output[dict[str, str]] = pulumi.Output.all(before, builds).apply(define_new)
        paths = pulumi.Output.all(early, late, builds).apply(
            lambda found: kept_paths(found[2], {**found[0], **found[1]}))
        both = pulumi.Output.all(builds, paths)
        self.current = both.apply(lambda found: found[1][found[0].current_name])
        self.oldest = both.apply(lambda found: found[1][found[0].listed[0].name])
        self.document = both.apply(lambda found: releases_document(found[0], found[1], settings))
        self.kept = paths.apply(lambda found: sorted(found.values()))


def kept_paths(kept: Builds, paths: Mapping[str, str]) -> dict[str, str]:
    """The definitions of the releases `kept` holds; one defined early that `advance` did not keep is a bug."""
    if lost := set(paths) - {b.name for b in kept.kept}:
        raise AssertionError(f"releases {sorted(lost)} were defined before the build was known, then dropped")
    return dict(paths)


def releases_document(kept: Builds, paths: Mapping[str, str], settings: ReleaseSettings) -> str:
    """RELEASES: the listed releases, oldest first, each launched from its own definition."""
    return catalogue([StackRelease(b.name, {ANY_TRANSPORT: paths[b.name]}, b.created) for b in kept.listed], settings)
