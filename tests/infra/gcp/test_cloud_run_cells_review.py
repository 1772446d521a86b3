"""Review of a GCP stack with `cloudRunCells` across `up`s (stacks/gcp/stack.py, releases.py): what the
dispatcher is told to find in every cell's project once a new build adds a release.

The dispatcher lists CLOUDRUN_JOB's executions in each cell and drains a cell whose project lacks that job
for every start, of every release (dispatcher/machines/cloudrun/provider.py `_job_executions`;
tests/dispatcher/machines/test_cloudrun_cells.py, a project without the job). The stack makes a release's
job in its own project only, and each cell's copy is the operator's, made after the `up` that names it
(stacks/gcp/cell_jobs.py)."""

from __future__ import annotations

import json

from stacks.tools.mocks import unwrap
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_releases import JOB, OLD_BOT, build, cloudrun, releases, remembered
from tests.infra.test_turn_server import dispatcher_env

CELLS = json.dumps([{"name": c, "project": f"voicefleet-cell-{c}", "bot_service_account_id": "10400000000000000011" + n}
                    for c, n in (("a", "1"), ("b", "2"))])


def test_a_new_build_leaves_the_cells_job_one_they_already_hold(stack: StackRunner) -> None:
    old = build({"bot": OLD_BOT})
    run = cloudrun(stack, previous=remembered(old), cloudRunCells=CELLS)
    jobs = {unwrap(j.inputs)["labels"]["release"]: unwrap(j.inputs)["name"] for j in run.of_type(JOB)}
    listed = [release["name"] for release in releases(run)["releases"]]
    assert listed == [old["name"], listed[-1]] and len(jobs) == 2  # the new build is added beside the old
    # The job every cell has held since the old build's `up`, not this build's, which none holds yet.
    assert dispatcher_env(run, "gcp")["CLOUDRUN_JOB"] == jobs[old["name"]]
