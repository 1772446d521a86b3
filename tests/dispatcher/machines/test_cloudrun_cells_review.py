"""Hostile review of CLOUDRUN_CELLS (branch review_gcpcells): failing tests for what the review found.

Each test states what breaks; see the review report for the suggested fix."""

from __future__ import annotations

import dataclasses

import pytest

from dispatcher.machines.cloudrun.cells import CloudRunCellMachines
from tests.dispatcher.machines.test_cloudrun_cells import coordination, fake, machines  # noqa: F401
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs
from tests.support.cells import homed_in

PROJECT_NUMBER = "123456789012"  # the cell project vf-cell-b's number


@pytest.mark.xfail(strict=True, reason="review finding 3: a cell without the new release's job fails its sessions "
                   "telling the caller to run `pulumi up`, which never makes it")
async def test_a_release_the_stack_made_in_its_own_project_only_is_not_blamed_on_pulumi_up_in_a_cell(
        machines: CloudRunCellMachines, fake: FakeCloudRunJobs) -> None:  # noqa: F811
    """As the stack names a release (`RELEASES`: the job's path in the deployment's project, made
    there by `up`), a cell runs the job of that name in its own project, which nothing makes: the
    start fails `release_image_missing`, and the caller is told to "run `pulumi up` so the stack
    makes it again" although no `up` makes anything in a cell's project. The answer must name the
    cell's project and the job to make there."""
    path = fake.add_job("voicefleet-bot-r-0123456789", "europe-docker.pkg.dev/p/r/bot@sha256:" + "1" * 64)
    [session] = homed_in(machines, "a")
    s = dataclasses.replace(spec(session), image=path, release="r-0123456789")
    with pytest.raises(Exception) as refused:  # noqa: PT011
        await machines.launch(s)
    assert getattr(refused.value, "reason", None) == "release_image_missing"  # what happens today
    assert fake.executions == {}
    said = str(getattr(refused.value, "public_message", ""))
    assert "pulumi up" not in said and "vf-cell-a" in said, said
