"""Releases in a stack: `release`, `releasesKept`, `canaryPercent`, and the `RELEASES` list they make.

A `pulumi up` whose bot images changed adds a release instead of replacing the bot: the stack
lists the last `releasesKept` releases in the dispatcher's `RELEASES` variable (oldest first), and
the dispatcher gives a release it has not seen before `canaryPercent` of new sessions. What each
release launches is the cloud's own reference (an ECS task definition ARN with its revision, a GCE
instance template, …), which the cloud's stack module supplies; the list itself, its names and
its trimming are the same in every cloud, so they live here once.

The previous list is read from the stack's own last `releases` output (docs/pulumi.md, Releases):
an `up` whose images did not change rebuilds exactly the same list, so its plan shows no change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatcher.releases.names import is_release_name
from stacks.config.reader import Reader, SettingsError

KEPT_RANGE = (1, 10)
# The stack output the previous list is read back from, and the dispatcher variable it becomes.
OUTPUT = "releases"
VARIABLE = "RELEASES"
# Releases of margin a registry keeps beyond the listed ones: the image of a release just dropped
# stays for the next two releases, so a dispatcher still starting it while the new list deploys
# (and ECR, which expires images up to a day late, by count) never pulls a deleted image. ECR
# counts releases by their `release-` tag, one per release whatever a build pushes
# (stacks/aws/registry.py), and untagged manifests by a count of their own.
IMAGE_MARGIN = 2


@dataclass(frozen=True)
class ReleaseSettings:
    """`release` (None: named from the bot images' digests), `releasesKept`, `canaryPercent`."""

    name: str | None = None
    kept: int = 3
    canary_percent: int = 10


@dataclass(frozen=True)
class StackRelease:
    """One listed release: its name, the cloud's reference per transport, when the stack first listed it."""

    name: str
    images: Mapping[str, str]
    created: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "images": dict(sorted(self.images.items())), "created": self.created}


def load(cfg: Reader) -> ReleaseSettings:
    """The three keys, each refused with its name and the way forward."""
    name = cfg.optional("release")
    if name is not None and not is_release_name(name):
        raise cfg.fail("release", f"must be 1 to 32 lowercase letters, digits and dashes, starting with a letter or "
                                  f"digit (got {name!r}); or unset it (`pulumi config rm release`) to name each "
                                  "release from its bot image's digest")
    return ReleaseSettings(
        name=name,
        kept=cfg.integer("releasesKept", minimum=KEPT_RANGE[0], maximum=KEPT_RANGE[1]),
        canary_percent=cfg.integer("canaryPercent", minimum=0, maximum=100),
    )


def check_images_kept(cfg: Reader, settings: ReleaseSettings, builds_kept: int) -> None:
    """The registry must keep every listed release's image and the margin: `builds_kept` is how many
    releases' bot images the cloud's cleanup rules keep for `imageRetentionCount`."""
    needed = settings.kept + IMAGE_MARGIN
    if builds_kept < needed:
        raise cfg.fail("imageRetentionCount", f"keeps {builds_kept} releases' bot images, fewer than the {needed} that "
                                              f"releasesKept {settings.kept} needs (each listed release's image, "
                                              f"and {IMAGE_MARGIN} more so a release just dropped can still start): "
                                              "raise imageRetentionCount, or lower releasesKept")


def derived_name(images: Mapping[str, str]) -> str:
    """`r-` and 10 hex digits: of the bot image's digest where the one reference is an image by
    digest (`…@sha256:<hex>`); otherwise of the SHA-256 of the sorted `transport=reference` lines
    (an ECS task definition ARN with its revision pins the image digest and the task's settings).
    Anything that changes what a session launches names a new release; the same, the same one."""
    if len(images) == 1:
        (reference,) = images.values()
        digest = reference.rsplit("@sha256:", 1)[-1] if "@sha256:" in reference else _sha256(reference)
    else:
        digest = _sha256("\n".join(f"{transport}={reference}" for transport, reference in sorted(images.items())))
    return f"r-{digest[:10]}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def previous(recorded: object) -> tuple[StackRelease, ...]:
    """The list the last `up` recorded (its `releases` output): None before the first, or from a
    stack older than releases. Anything else unreadable is refused rather than silently forgotten,
    which would drop every release a session may be pinned to."""
    if recorded is None or recorded == "":
        return ()
    try:
        data: Any = json.loads(recorded) if isinstance(recorded, str) else recorded
        return tuple(StackRelease(name=str(entry["name"]), created=str(entry["created"]),
                                  images={str(key): str(value) for key, value in entry["images"].items()})
                     for entry in data["releases"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise SettingsError(f"The stack's own `{OUTPUT}` output is not a releases list ({str(recorded)[:200]!r}): "
                            "it is how the stack remembers its releases between runs (docs/pulumi.md, Releases); "
                            "restore it from an earlier state (`pulumi stack history`)") from None


def roll(before: Sequence[StackRelease], *, name: str, images: Mapping[str, str], kept: int,
         now: datetime | None = None) -> tuple[StackRelease, ...]:
    """The list after this `up`: the current release added last unless already listed, then the
    oldest others dropped down to `kept`. A listed name with other references is refused: a release
    never changes (its pinned sessions would silently run another bot), and a derived name cannot
    collide so, only a `release` key left at its old value for a new bot. So is a second name for a
    listed bot (a `release` key changed, or unset, with no change to the bot)."""
    listed = {release.name: release for release in before}
    current = listed.get(name)
    if current is not None and dict(current.images) != dict(images):
        raise SettingsError(f"Invalid stack configuration: voicefleet:release = {name!r} is already a release "
                            f"launching {dict(sorted(current.images.items()))}, and a release never changes: "
                            "name this one anew (`pulumi config set release <new name>`), or unset it "
                            "(`pulumi config rm release`) to name each release from what it launches")
    twin = next((release.name for release in before if current is None and dict(release.images) == dict(images)), None)
    if twin is not None:
        # Two names for one bot would split its sessions and health between a "canary" and its
        # stable twin, and the dispatcher counts an idle bot by its image under the first name.
        given = f"voicefleet:release = {name!r}" if name != derived_name(images) else \
            f"voicefleet:release is unset, and its derived name {name!r}"
        raise SettingsError(f"Invalid stack configuration: {given} would name a bot already listed as {twin!r} "
                            f"(the same {dict(sorted(images.items()))}): a new release is a changed bot; set it back "
                            f"(`pulumi config set release {twin}`) until the bot changes")
    releases = list(before)
    if current is None:
        created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        releases.append(StackRelease(name=name, images=dict(images), created=created))
    while len(releases) > kept:
        releases.remove(next(release for release in releases if release.name != name))
    return tuple(releases)


def check_shared_name(before: Sequence[StackRelease], after: Sequence[StackRelease], settings: ReleaseSettings,
                      *, regions: bool) -> None:
    """With several regions the releases' traffic is one for the whole deployment and names releases
    (docs/regions.md, Releases across regions), but a derived name hashes this region's own references
    (an ECS task definition ARN names its region, account and revision): the same bot would have
    another name in each region, and a weight set in one region would be dropped in every other, its
    share going to whatever release is listed there. So a release added beside others needs a name
    given in config, the same in every region's stack. The first release, alone, takes all traffic
    wherever it is listed and may keep its derived name."""
    listed = {release.name for release in before}
    if not regions or settings.name is not None or not listed:
        return
    added = [release.name for release in after if release.name not in listed]
    if added:
        raise SettingsError(f"Invalid stack configuration: voicefleet:release is unset in a stack with regions, and "
                            f"this bot would be added as {added[0]!r}, a name made from this region's own "
                            "references (task definition ARNs, image digests) that no other region lists, so "
                            "weights set for it would be dropped "
                            "there: name the release (`pulumi config set release <name>`) the same in every "
                            "region's stack before the `up` that changes the bot")


def catalogue(releases: Sequence[StackRelease], settings: ReleaseSettings) -> str:
    """`RELEASES` (and the `releases` output): the dispatcher's format, byte-identical for the same list."""
    return json.dumps({"releases": [release.to_json() for release in releases],
                       "canaryPercent": settings.canary_percent}, separators=(",", ":"), sort_keys=True)
