"""Review of `python -m stacks.drain` over gceCells (stacks/tools/drain.py): what it must not leave behind."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.outbound.provider_errors import ProviderError
from stacks.tools.drain import Drain, DrainError, provider_environment
from tests.fakes.cloud_run import FakeCloudRun
from tests.fakes.fixtures import fake_cloud_run, fake_gce  # noqa: F401 - fixtures
from tests.fakes.gce import FakeGce
from tests.infra.tools.test_drain import drain_gcp, gce_cells_stack, gcp_outputs


def test_the_stacks_own_project_refusing_still_leaves_every_cell_drained(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    env = gce_cells_stack(fake_gce, fake_cloud_run)
    fake_gce.projects[fake_gce.project].denied = True  # the operator may not list VMs in the stack's own project
    with pytest.raises((DrainError, ProviderError)):  # the drain fails, naming the project: that is right
        drain_gcp(gcp_outputs(env, fake_cloud_run), env, fake_cloud_run)
    # ...but the cells' VMs, which bill, are deleted all the same (as a refusing cell leaves the others drained)
    assert {p: found.instances for p, found in fake_gce.projects.items()
            if p != fake_gce.project and found.instances} == {}


class DeletesTakeTime:
    """Time for the drain: each wait of a poll lasts as long as Compute Engine takes to delete a running VM (the
    fake deletes at once, a real VM stays listed, STOPPING, for about a minute), and waits that overlap end together."""

    def __init__(self, seconds: float) -> None:
        self.now, self.seconds = 0.0, seconds

    def clock(self) -> float:
        return self.now

    async def sleep(self, _: float) -> None:
        wake = self.now + self.seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


def test_the_cells_deletes_overlap_so_the_deadline_bounds_the_slowest_cell_not_their_sum(
    fake_gce: FakeGce, fake_cloud_run: FakeCloudRun  # noqa: F811
) -> None:
    env = gce_cells_stack(fake_gce, fake_cloud_run)
    time = DeletesTakeTime(400)  # three cells whose VMs each take 400 s to go; 700 s is ample for them together
    outputs = gcp_outputs(env, fake_cloud_run)
    drain = Drain(outputs, provider_environment(outputs, env), grace=0, deadline=700, poll=5, clock=time.clock,
                  sleep=time.sleep, now=lambda: fake_cloud_run.now)
    try:
        asyncio.run(drain.run())
    except DrainError:
        pass  # asserted below: what matters is what it left running
    assert {p: len(found.instances) for p, found in fake_gce.projects.items() if found.instances} == {}
