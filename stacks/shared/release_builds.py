"""What a stack remembers of its releases from one `pulumi up` to the next, read from its own outputs.

The list, its rules (names, `releasesKept`, refusing a changed release) and how a stack reads its
own last outputs are stacks/config/releases.py's and stacks/shared/releases.py's; this module adds what
the stacks that re-declare each release's definition every `up` (GCE templates, Cloud Run jobs,
Kubernetes SandboxTemplates and their pools) need besides: each kept release's *build* (its images by digest, from
which its definition is made), and the releases that dropped out of the list but whose definition and
image a bot may still run (*retiring*). A retiring release goes once no bot can run it any more:
a bot VM or job execution never outlives its longest life, which the dispatcher sets when it
launches it (a cold one: `maxSessionSeconds` plus its grace; a reserve one, with the channel: the
reserve's `RESERVE_MAX_IDLE_SECONDS` wait, then a whole session, plus the grace —
dispatcher/machines/gce/reserve.py `max_run_seconds`, dispatcher/machines/cloudrun/reserve.py
`idle_seconds`). That life is the longest one the release's bots were launched under: each `up`
records its own (`longestBotSeconds`), and each release keeps the running maximum over the `up`s
that listed it (`lives`), so lowering `maxSessionSeconds` before or when a release is dropped
cannot delete a job whose execution still runs.
Each stack says how long its bots live (GCP: stacks/gcp/stack.py `_longest_bot`; Kubernetes:
stacks/k8s/release_pools.py `longest_bot_seconds`).
An `up` that changes nothing keeps every name, time and list as it was: the clock, read once per
`up` (`up_time`), stamps only a new or dropped release.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi

from stacks.config.reader import SettingsError
from stacks.config.releases import ReleaseSettings, StackRelease, check_shared_name, derived_name, previous, roll
from stacks.shared import releases

BUILDS_OUTPUT = "releaseBuilds"  # the stack output the next `up` reads back
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Build:
    """A kept release: its name, when the stack first listed it, its images (role -> repository@sha256:…)."""

    name: str
    created: str
    images: Mapping[str, str]
    retired: str | None = None  # when it left the list; kept until no session can still run it
    # The longest life any of its bots was launched with: what it is kept for once `retired` (None: a
    # state written before lives were recorded, which falls back to the current settings').
    lives: int | None = None

    def as_output(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "images": dict(sorted(self.images.items())),
                **({"retired": self.retired} if self.retired is not None else {}),
                **({"livesSeconds": self.lives} if self.lives is not None else {})}


@dataclass(frozen=True)
class Builds:
    listed: tuple[Build, ...] = ()  # offered to the dispatcher (RELEASES), oldest first
    retiring: tuple[Build, ...] = ()  # dropped from the list, their definitions and images still kept
    current_name: str = ""  # this `up`'s build (listed; not always the newest, when an older one is deployed again)
    longest_bot_seconds: int | None = None  # the longest bot life of the settings this `up` deployed
    kept: tuple[Build, ...] = field(init=False)  # every release whose definition and image must exist

    def __post_init__(self) -> None:
        object.__setattr__(self, "kept", (*self.retiring, *self.listed))

    @property
    def current(self) -> Build:
        return next(b for b in self.listed if b.name == self.current_name)

    def as_output(self) -> dict[str, Any]:
        return {"listed": [b.as_output() for b in self.listed], "retiring": [b.as_output() for b in self.retiring],
                "current": self.current_name,
                **({"longestBotSeconds": self.longest_bot_seconds} if self.longest_bot_seconds is not None else {})}

    def digests(self) -> list[str]:
        """Every kept release's image digests (`sha256:…`), sorted."""
        return sorted({ref.rsplit("@", 1)[-1] for b in self.kept for ref in b.images.values() if "@" in ref})


def parse(recorded: object) -> Builds:
    """What the last `up` exported as BUILDS_OUTPUT (None before the first one). Anything else
    unreadable is refused rather than forgotten, which would drop every kept release at once."""
    if recorded is None:
        return Builds()
    try:
        assert isinstance(recorded, Mapping)

        def build(raw: Mapping[str, Any]) -> Build:
            retired = raw.get("retired")
            for stamp in (raw["created"], *([retired] if retired is not None else [])):
                datetime.strptime(str(stamp), STAMP)
            return Build(str(raw["name"]), str(raw["created"]), {str(k): str(v) for k, v in raw["images"].items()},
                         str(retired) if retired is not None else None, seconds(raw.get("livesSeconds")))

        retiring = tuple(build(raw) for raw in recorded.get("retiring") or ())
        if any(b.retired is None for b in retiring):  # it would be dropped at once (`unexpired`)
            raise ValueError("a retiring build without its `retired` time")
        return Builds(tuple(build(raw) for raw in recorded.get("listed") or ()), retiring,
                      str(recorded.get("current") or ""),
                      seconds(recorded.get("longestBotSeconds")))
    except (AssertionError, ValueError, TypeError, KeyError, AttributeError):
        raise SettingsError(f"The stack's own `{BUILDS_OUTPUT}` output is not a list of release builds "
                            f"({str(recorded)[:200]!r}): it is how the stack remembers its releases' images between "
                            "runs (docs/pulumi.md, Releases); restore it from an earlier state "
                            "(`pulumi stack history`)") from None


def seconds(value: object) -> int | None:
    """A recorded life in whole seconds, absent in a state written before lives were recorded. A stack
    output's number comes back as a float (outputs are protobuf Structs, whose numbers are doubles)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
            isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"not a number of seconds: {value!r}")
    return int(value)


def up_time() -> datetime:
    """This `up`'s moment, read once and handed to everything that compares with it (`advance`,
    `registry_keeps`), so the list and the registry's keep rule agree on what has expired. The
    offline runs set their own clock (stacks/tools/mocks.py)."""
    return releases.clock()


def advance(before: Builds, images: Mapping[str, str], settings: ReleaseSettings, *,
            longest_bot_seconds: int, now: datetime, regions: bool = False) -> Builds:
    """This `up`'s builds: the list rolled with the current build (stacks/config/releases.py `roll`),
    the ones it drops retiring, and retiring ones past the longest bot life gone."""
    stamp = now.strftime(STAMP)
    name = settings.name or derived_name(images)
    earlier = [b for b in before.retiring if b.name == name]  # a retiring build deployed again is listed again
    recorded = [StackRelease(b.name, b.images, b.created) for b in (*earlier, *before.listed)]
    listed = roll(recorded, name=name, images=images, kept=settings.kept, now=now)
    # With several regions a release's name is shared by every region's stack (docs/pulumi.md, Releases).
    check_shared_name(recorded, listed, settings, regions=regions)
    names = {release.name for release in listed}
    # A release's life is the longest any of its bots may have been launched with: every `up` that
    # listed it (a running maximum), the last one's dispatcher included while this one's rolls out.
    lived = {b.name: b.lives or 0 for b in (*before.retiring, *before.listed)}
    floor = max(before.longest_bot_seconds or 0, longest_bot_seconds)
    dropped = [replace(b, retired=stamp, lives=max(lived[b.name], floor)) for b in before.listed if b.name not in names]
    retiring = tuple(b for b in (*before.retiring, *dropped) if b.name not in names)
    kept = tuple(Build(r.name, r.created, dict(r.images), lives=max(lived.get(r.name, 0), floor)) for r in listed)
    return unexpired(Builds(kept, retiring, name, longest_bot_seconds), longest_bot_seconds, now)


def unexpired(builds: Builds, longest_bot_seconds: int, now: datetime) -> Builds:
    """`builds` without the retiring ones no bot can run any more (retired longer ago than a bot of it
    lives: its recorded life, else, for a state from before lives were recorded, the current settings')."""
    def horizon(build: Build) -> timedelta:
        return timedelta(seconds=build.lives if build.lives is not None else longest_bot_seconds)

    return replace(builds, retiring=tuple(
        b for b in builds.retiring
        if b.retired is not None and datetime.strptime(b.retired, STAMP).replace(tzinfo=UTC) + horizon(b) > now))


def kept_whatever_is_built(before: Builds, longest_bot_seconds: int, now: datetime) -> tuple[Build, ...]:
    """The remembered releases this `up` keeps whatever bot it builds (`advance` keeps each: a listed one
    stays listed or turns retiring, a retiring one stays until it expires). Known at a preview, where the
    build's digest is not: a stack declares their definitions from these, outside the apply that waits on
    the build, so its preview shows them kept (a resource declared in an apply on an unknown value is
    missing from the preview, which then shows it deleted: pulumi/pulumi#16140)."""
    return unexpired(before, longest_bot_seconds, now).kept


def remembered(name: str, parent: pulumi.Resource, *, listed: str | None = None) -> pulumi.Output[Builds]:
    """What this very stack's last completed `up` kept (nothing before its first), as stacks/shared/releases.py
    reads its list: through a StackReference to the stack itself. `listed`: the output a stack from before
    its builds were recorded kept its list in (`releases`), read when there are no builds yet (`seeded`)."""
    reference = pulumi.StackReference(f"{name}-release-builds", stack_name=releases.own_stack(),
                                      opts=pulumi.ResourceOptions(parent=parent))
    builds = reference.get_output(BUILDS_OUTPUT).apply(parse)
    if listed is None:
        return builds
    return pulumi.Output.all(builds, reference.get_output(listed)).apply(lambda found: seeded(found[0], found[1]))


def seeded(builds: Builds, recorded: object) -> Builds:
    """A stack whose last `up` recorded its releases (`recorded`, its `releases` output) but not their
    builds yet: that list, as builds, so the first `up` that records builds forgets no listed release."""
    if builds.listed or builds.retiring:
        return builds
    return Builds(tuple(Build(r.name, r.created, dict(r.images)) for r in previous(recorded)))
