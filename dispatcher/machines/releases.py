"""What the cloud providers share about releases (dispatcher/releases/): the references a
deployment's releases name, and the error for a release whose reference its provider lacks.

A provider finds its machines by what it launched them from (ECS: the task definition's family,
Cloud Run: the job), so it must know every release's reference, not only its own setting: any
replica answers for a session of any release, and the reaper counts them all.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.machines.base import MachinesError
from dispatcher.releases.catalogue import Catalogue


def release_references(env: Mapping[str, str]) -> tuple[str, ...]:
    """Every provider reference the deployment's releases name (`RELEASES`), oldest release first."""
    catalogue = Catalogue.from_env(env, local=False)
    return tuple(dict.fromkeys(ref for release in catalogue.releases for ref in release.images.values()))


class ReleaseImageMissing(MachinesError):
    """A session's (or an idle bot's) release names what its provider does not have: a task
    definition, template or job deleted, or never made. Not retried: the same launch fails again."""

    def __init__(self, release: str, provider: str, detail: str, *,
                 remedy: str = "run `pulumi up` so the stack makes it again") -> None:
        """`remedy`: what makes it again, where the stack does not (a cell's project)."""
        super().__init__("release_image_missing", f"release {release!r}: {detail}")
        self.release = release
        # The caller is told the release, never the provider's words (they name accounts and roles).
        self.public_message = (f"release {release!r} cannot start: {provider} does not have its bot image; "
                               f"start with another release, or {remedy}")
