"""The stack's memory of its releases: its own last `releases` output, read back through a StackReference.

A program sees only what it declares now, and a release's references (an ECS task definition
revision, …) outlive the `up` that made them: a replaced task definition stays registered
(`skip_destroy`) but leaves the state. So each `up` reads the list the previous `up` exported,
rolls it forward with the release it deploys now (stacks/config/releases.py `roll`), and exports
the result again. The engine reads a StackReference from the backend's latest checkpoint with no
check against the running stack (pulumi/pulumi pkg/resource/deploy/builtins.go
`readStackReference` → `GetStackOutputs`), a read is not a change (pkg/engine `HasChanges` skips
OpRead), a failed `up` keeps the outputs it did not replace (pulumi/pulumi#15754, CLI 3.112; this
program needs 3.226), and an unchanged release rolls to the same bytes: a second `up` has no diff.
docs/pulumi.md, Releases, weighs the other ways.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pulumi

from stacks.config.releases import OUTPUT, ReleaseSettings, catalogue, derived_name, previous, roll


def utc_now() -> datetime:
    return datetime.now(UTC)


# When a new release is first listed (its `created`). Offline runs set their own
# (stacks/tools/mocks.py), so that a recording never depends on the wall clock.
clock: Callable[[], datetime] = utc_now


def own_stack() -> str:
    """This stack's fully qualified name, as a StackReference names it in every backend."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def listed(name: str, settings: ReleaseSettings, images: Mapping[str, pulumi.Input[str]],
           parent: pulumi.Resource) -> pulumi.Output[str]:
    """`RELEASES` after this `up` (also the stack output `releases`): the recorded list with the
    release that launches `images` (transport or `*` → the cloud's reference) added or kept."""
    recorded = pulumi.StackReference(f"{name}-releases", stack_name=own_stack(),
                                     opts=pulumi.ResourceOptions(parent=parent)).get_output(OUTPUT)

    def rolled(args: list[object]) -> str:
        before, current = args
        assert isinstance(current, Mapping)
        refs = {str(transport): str(reference) for transport, reference in current.items()}
        releases = roll(previous(before), name=settings.name or derived_name(refs), images=refs, kept=settings.kept,
                        now=clock())
        return catalogue(releases, settings)

    return pulumi.Output.all(recorded, pulumi.Output.from_input(images)).apply(rolled)
