"""gcp-prod planned with Cloud Run bots (`--config botRuntime=cloudrun`), through `stacks.plan`:
refused past Cloud Run's running-executions quota unless the stack states a raised one; once it
does, the bot job is unprotected (a switch back to gce deletes it) and the reserve's cold-start
prior is Cloud Run's with what the bots' Direct VPC egress and Cloud NAT add, not Compute Engine's."""

from __future__ import annotations

from functools import cache

import pytest

from dispatcher.machines import cloudrun, gce
from stacks.config.cloud_run import cold_start_prior
from stacks.tools.plan import checked_plan, main
from tests.infra.settings_read import refusal
from tests.infra.tools.plan_cells import THREE_CLOUD_RUN_CELLS as THREE_CELLS
from tests.infra.tools.plan_cells import listed_projects, value_after

CLOUD_RUN = ["--config", "botRuntime=cloudrun"]


@cache
def _cells_plan() -> tuple[str, list[str], list[str]]:
    """gcp-prod's plan with Cloud Run cells (nothing patched): read by two tests, made once (three runs of 4 s)."""
    return checked_plan("gcp-prod", {"botRuntime": "cloudrun", "cloudRunCells": THREE_CELLS})


def test_sessions_and_reserve_past_cloud_runs_quota_are_refused_naming_the_ways_out(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gcp-prod", *CLOUD_RUN]) == 2
    # The plan's own lines (a library may write to stderr too, as gRPC does beside a fork).
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gcp-prod:")]
    assert line.startswith("gcp-prod: Invalid stack configuration: voicefleet:cloudRunExecutionQuota is 1000")
    assert "maxConcurrentSessions=2500 + reserveMaxIdle=400 = 2900" in line
    assert "request a quota increase" in line and "Lower maxConcurrentSessions or reserveMaxIdle" in line


def test_a_stated_raised_quota_plans_with_an_unprotected_job_and_cloud_runs_cold_start_prior() -> None:
    text, problems, notes = checked_plan("gcp-prod", {"botRuntime": "cloudrun", "cloudRunExecutionQuota": "2900"})
    assert problems == []  # among them the preflight's: no protected bot job to block a switch to gce
    job = text.split("gcp:cloudrunv2/job:Job  ", 1)[1].split("\n\n", 1)[0]
    assert "  deletionProtection: false" in job.splitlines()
    prior = float(value_after(text, "RESERVE_COLD_START_SECONDS"))
    assert prior == cold_start_prior(direct_vpc_nat=True) > cloudrun.COLD_START.median_seconds
    assert prior != gce.COLD_START.median_seconds
    assert any("needs one `up` on cloudrun first" in note for note in notes)


def test_one_execution_fewer_than_the_stack_may_run_is_refused() -> None:
    """Refused by the settings' read, which the plan runs first (the plan's own refusal, exit 2: above)."""
    assert "cloudRunExecutionQuota is 2899" in refusal("gcp-prod", {"botRuntime": "cloudrun",
                                                                    "cloudRunExecutionQuota": "2899"})


def test_cloud_run_cells_count_each_projects_quota_and_reach_the_dispatcher() -> None:
    """2900 executions: past one project's 1000, within three projects' (cloudRunCells)."""
    text, problems, notes = _cells_plan()
    assert problems == []  # among them the dispatcher's own reading of its environment
    assert listed_projects(text, "CLOUDRUN_CELLS") == [f"voicefleet-cell-{c}" for c in "abc"]
    [ceiling] = [note for note in notes if "Cloud Run running job executions" in note]
    assert ceiling.startswith("concurrency ceiling")  # and no warning: 2,500 sessions beside the reserve's 400
    assert ("1,000 executions per project and region × 3 projects (cloudRunCells) = 2,600 sessions beside "
            "reserveMaxIdle=400") in ceiling, ceiling


def test_a_stack_with_cells_is_told_the_job_each_cell_project_must_hold_for_this_build() -> None:
    """Each build names a new release job (`<prefix>-r-<digest>`), which each cell runs by that name in
    its own project: the stack makes it in its own project only, so the plan names, for this build,
    the job each cell must hold, its image and the grants."""
    text, problems, notes = _cells_plan()
    assert problems == []
    job = value_after(text, "CLOUDRUN_JOB")
    assert job.startswith("voicefleet-gcp-prod-r-")  # this build's release job: a new name each build
    [told] = [note for note in notes if f"job {job} " in note]
    assert all(f"voicefleet-cell-{c} (europe-west1)" in told for c in "abc"), told
    image = text.split("gcp:cloudrunv2/job:Job  ", 1)[1].split("image: ", 1)[1].split()[0]
    assert f"(image {image})" in told and "@sha256:" in image
    assert "add-iam-policy-binding " + job in told and "roles/artifactregistry.reader" in told, told
    assert "serviceAccount:" in told.split("--member ", 1)[1], told  # the dispatcher's account, named


def test_cloud_run_cells_make_the_store_even_for_one_dispatcher_instance() -> None:
    small = {"botRuntime": "cloudrun", "dispatcherMaxInstances": "1", "maxConcurrentSessions": "20",
             "reserveMaxIdle": "5"}
    alone, problems, _ = checked_plan("gcp-prod", small)
    assert problems == [] and "gcp:memorystore/instance:Instance" not in alone  # one instance: no store
    text, problems, _ = checked_plan("gcp-prod", {**small, "cloudRunCells": THREE_CELLS})
    assert problems == [] and "gcp:memorystore/instance:Instance" in text  # each session's project is recorded there


@pytest.mark.parametrize(("config", "said"), [
    ({"cloudRunCells": THREE_CELLS}, "is for botRuntime cloudrun only"),
    ({"botRuntime": "cloudrun", "cloudRunCells": '[{"name": "a"}]'}, "CLOUDRUN_CELLS[0] (a): project must be"),
])
def test_a_wrong_cloud_run_cell_list_is_refused_naming_the_key(config: dict[str, str], said: str) -> None:
    """Refused by the settings' read, which the plan runs first (the plan's own refusal, exit 2: above and below)."""
    refused_read = refusal("gcp-prod", config)
    assert "voicefleet:cloudRunCells" in refused_read and said in refused_read, refused_read


def test_a_quota_past_any_google_grants_is_refused_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    """A 400-digit quota overflowed the ceiling's float arithmetic into a traceback in the plan and preview."""
    assert main(["gcp-prod", *CLOUD_RUN, "--config", "cloudRunExecutionQuota=" + "9" * 400]) == 2
    err = capsys.readouterr().err
    assert "voicefleet:cloudRunExecutionQuota" in err and "Traceback" not in err, err
