"""Hostile review of `cloudRunCells` (branch review_gcpcells): a failing test for what the review found."""

from __future__ import annotations

import json

import pytest

from stacks.tools.plan import checked_plan

THREE_CELLS = json.dumps([{"name": c, "project": f"voicefleet-cell-{c}"} for c in "abc"])


def _value_after(text: str, name: str) -> str:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {name}")
    return lines[at + 1].strip().removeprefix("value: ")


@pytest.mark.xfail(strict=True, reason="review finding 3: every build names a new release job that no cell has")
def test_a_stack_with_cells_is_told_the_job_each_cell_project_must_hold_for_this_build() -> None:
    """The stack names the bot job after the release (`<prefix>-r-<digest>`, stacks/config/releases.py
    `derived_name`, stacks/gcp/bot_job.py `job_name`), so every `up` that builds a new bot image gives
    CLOUDRUN_JOB and RELEASES a job name no cell project has: `for_cell` maps the release's job to
    the same name in each cell (settings.py `same_name_from`), the stack makes nothing there, and
    the dispatcher's grant is bound per job. Each session of the new release in a cell then fails
    `release_image_missing` ("run `pulumi up` so the stack makes it again", which it never will),
    and the release takes all traffic once its canary ends. A preview that plans a new build with
    cloudRunCells must say so, naming the job each cell needs (with its image and grant)."""
    text, problems, notes = checked_plan("gcp-prod", {"botRuntime": "cloudrun", "cloudRunCells": THREE_CELLS})
    assert problems == []
    job = _value_after(text, "CLOUDRUN_JOB")
    assert job.startswith("voicefleet-gcp-prod-r-")  # this build's release job: a new name each build
    told = [note for note in notes if job in note and "voicefleet-cell-a" in note]
    assert told, "no note tells the operator to make job " + job + " in each cell's project"
