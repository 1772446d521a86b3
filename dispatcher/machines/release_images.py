"""A release whose image its provider does not have: one refusal, the same from every provider.

A release names what its provider launches (docs/releases.md). When the provider answers that it has
no such thing (Fly's create, ACI's `InaccessibleImage`, Modal's unknown image id, Cerebrium's unknown
app), the start is refused `release_image_missing`, naming the release and the way out, instead of
the provider's generic refusal: nothing retried changes it, an operator must act.
"""

from __future__ import annotations

from dispatcher.machines.base import MachinesError

RELEASE_IMAGE_MISSING = "release_image_missing"


def release_image_missing(provider: str, release: str, image: str, said: str) -> MachinesError:
    """`said`: the provider's own words, for the log (the caller is told the reason only)."""
    return MachinesError(
        RELEASE_IMAGE_MISSING,
        f"release {release}: {provider} has no {image!r} ({said[:300]}); set its weight to 0 "
        f"(voicefleet releases set {release} 0), or list it again with an image that exists",
    )
