"""The stack's memory of its releases: its own last `releases` output, read back through a StackReference.

A program sees only what it declares now, and a release's references (an ECS task definition
revision, …) outlive the `up` that made them: a replaced task definition stays registered
(`skip_destroy`) but leaves the state. So each `up` reads the list the previous `up` exported,
rolls it forward with the release it deploys now (stacks/config/releases.py `roll`), and exports
the result again. The engine reads a StackReference from the backend's latest checkpoint with no
check against the running stack (pulumi/pulumi pkg/resource/deploy/builtins.go
`readStackReference` → `GetStackOutputs`; its tests/integration/stack_reference/python reads its
own stack's earlier output the same way), a read is not a change (pkg/engine `HasChanges` skips
OpRead), a failed `up` keeps the outputs it did not replace (pulumi/pulumi#15754, CLI 3.112; this
program needs 3.226), and an unchanged release rolls to the same bytes: a second `up` has no diff.
docs/pulumi.md, Releases, weighs the other ways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pulumi

from stacks.config.releases import (
    OUTPUT,
    ReleaseSettings,
    StackRelease,
    catalogue,
    check_shared_name,
    derived_name,
    previous,
    roll,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


# When a new release is first listed (its `created`). Offline runs set their own
# (stacks/tools/mocks.py), so that a recording never depends on the wall clock.
clock: Callable[[], datetime] = utc_now


def own_stack() -> str:
    """This stack's fully qualified name, as a StackReference names it in every backend."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


@dataclass(frozen=True)
class Rolled:
    """The list the last `up` left (what its dispatcher may still launch while this one deploys) and this one's."""

    before: tuple[StackRelease, ...]
    after: tuple[StackRelease, ...]
    current: str  # the name of the release this `up` deploys (listed in `after`)

    def references(self) -> list[str]:
        """Every reference either list names: what a dispatcher may launch until this `up` has rolled out."""
        return sorted({ref for release in (*self.before, *self.after) for ref in release.images.values()})


def rolled(name: str, settings: ReleaseSettings, images: Mapping[str, pulumi.Input[str]],
           parent: pulumi.Resource, *, regions: bool = False) -> pulumi.Output[Rolled]:
    """The recorded list, and it with the release that launches `images` (transport or `*` → the
    cloud's reference) added or kept. `regions`: the stack is one region of several, whose releases
    must share their names."""
    recorded = pulumi.StackReference(f"{name}-releases", stack_name=own_stack(),
                                     opts=pulumi.ResourceOptions(parent=parent)).get_output(OUTPUT)

    def roll_forward(args: list[object]) -> Rolled:
        before, built = args
        assert isinstance(built, Mapping)
        refs = {str(transport): str(reference) for transport, reference in built.items()}
        recorded_releases = previous(before)
        release = settings.name or derived_name(refs)
        releases = roll(recorded_releases, name=release, images=refs, kept=settings.kept, now=clock())
        check_shared_name(recorded_releases, releases, settings, regions=regions)
        return Rolled(recorded_releases, releases, release)

    return pulumi.Output.all(recorded, pulumi.Output.from_input(images)).apply(roll_forward)


def listed(name: str, settings: ReleaseSettings, images: Mapping[str, pulumi.Input[str]],
           parent: pulumi.Resource, *, regions: bool = False) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """`RELEASES` after this `up` (also the stack output `releases`), and the name of the release it deploys."""
    found = rolled(name, settings, images, parent, regions=regions)
    return found.apply(lambda found: catalogue(found.after, settings)), found.apply(lambda found: found.current)
