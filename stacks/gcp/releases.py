"""The GCP stack's releases: a definition per kept release, the RELEASES list, what the registry keeps.

Each kept release (stacks/shared/release_builds.py: listed, or retiring while a session may still run it)
gets its own definition from its own images: an instance template (botRuntime gce) or a Cloud Run
job (cloudrun), created when the remembered list and this `up`'s build are known. The dispatcher is
offered the listed ones (RELEASES), each with that definition for every transport (`*`): a
template carries both the Daily and the SmallWebRTC image (the VM picks by session), a job its one
image. The stack's other settings (machine type, secrets, channel) are every release's: changing
them replaces every kept release's template, or updates every job, under the same release names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pulumi

from dispatcher.releases.catalogue import ANY_TRANSPORT
from images.component import Images
from stacks.config.releases import ReleaseSettings, StackRelease, catalogue
from stacks.gcp.bot_job import BotJob
from stacks.gcp.bot_template import BOT_ROLE, WEBRTC_ROLE, BotTemplate
from stacks.shared.release_builds import Builds, unexpired


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
    """The kept releases' definitions (created once `builds` is known), and what the dispatcher reads."""

    current: pulumi.Output[str]  # the current build's template or job path: GCE_INSTANCE_TEMPLATE, CLOUDRUN_JOB
    document: pulumi.Output[str]  # RELEASES
    kept: pulumi.Output[list[str]]  # every kept release's template or job path, the retiring ones' too

    def __init__(self, builds: pulumi.Output[Builds], bot: BotTemplate | BotJob, settings: ReleaseSettings,
                 job_role: str = BOT_ROLE) -> None:
        def define(kept: Builds) -> pulumi.Output[dict[str, str]]:
            paths = {b.name: bot.release_template(b) if isinstance(bot, BotTemplate)
                     else bot.release_job(b, b.images.get(job_role) or b.images[BOT_ROLE]) for b in kept.kept}
            return pulumi.Output.all(**paths).apply(lambda found: {name: str(path) for name, path in found.items()})

        paths: pulumi.Output[dict[str, str]] = builds.apply(define)  # an Output, flattened
        both = pulumi.Output.all(builds, paths)
        self.current = both.apply(lambda found: found[1][found[0].current_name])
        self.document = both.apply(lambda found: releases_document(found[0], found[1], settings))
        self.kept = paths.apply(lambda found: sorted(found.values()))


def releases_document(kept: Builds, paths: Mapping[str, str], settings: ReleaseSettings) -> str:
    """RELEASES: the listed releases, oldest first, each launched from its own definition."""
    return catalogue([StackRelease(b.name, {ANY_TRANSPORT: paths[b.name]}, b.created) for b in kept.listed], settings)
