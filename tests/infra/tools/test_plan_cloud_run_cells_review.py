"""Review of `cloudRunCells` as the program reads it (stacks/config/cloud_run.py, settings.py), planned
through `stacks.plan` on gcp-prod with Cloud Run bots: what the preview holds the sessions to, and what a
cell must name for the dispatcher to accept its bots."""

from __future__ import annotations

import json

import pytest

from stacks.tools.plan import checked_plan, main

ACCOUNT = "104000000000000000111"


def _cells(**more: object) -> str:
    return json.dumps([{"name": c, "project": f"voicefleet-cell-{c}", **more} for c in "abc"])


def _args(config: dict[str, str]) -> list[str]:
    return [arg for key, value in config.items() for arg in ("--config", f"{key}={value}")]


def test_sessions_past_the_cells_max_executions_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    config = {"botRuntime": "cloudrun", "maxConcurrentSessions": "500", "reserveMaxIdle": "5",
              # the 5 replicas the channel needs for 500 sessions count the cells' 3 × 100 executions together
              "dispatcherMaxInstances": "5",
              "cloudRunCells": _cells(bot_service_account_id=ACCOUNT, max_executions=100)}
    assert main(["gcp-prod", *_args(config)]) == 2
    err = capsys.readouterr().err
    assert "voicefleet:cloudRunExecutionQuota" in err and "the dispatcher at most 300" in err, err
    assert "counted once, not per dispatcher replica" in err, err


def test_cloud_run_cells_hold_the_sessions_and_the_reserve_to_the_projects_quotas() -> None:
    """3,600 sessions and the stack file's 400 reserve bots fit four projects' 4,000 executions: the reserve
    runs over the cells too (cloudrun/cell_reserve.py), so 3,700 would be past them. The stack's own
    project, listed as a cell, runs the stack's own bot job's account, which CLOUDRUN_BOT_SERVICE_ACCOUNT_ID
    names: it needs no bot_service_account_id."""
    cells = [*json.loads(_cells(bot_service_account_id=ACCOUNT)), {"name": "home", "project": "voicefleet-prod"}]
    _, problems, _ = checked_plan("gcp-prod", {"botRuntime": "cloudrun", "maxConcurrentSessions": "3600",
                                               "cloudRunCells": json.dumps(cells)})
    assert problems == [], problems


def test_sessions_and_the_reserve_past_the_cells_quotas_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """3,700 sessions beside the stack file's 400 reserve bots are past four projects' 4,000 executions."""
    cells = [*json.loads(_cells(bot_service_account_id=ACCOUNT)), {"name": "home", "project": "voicefleet-prod"}]
    config = {"botRuntime": "cloudrun", "maxConcurrentSessions": "3700", "cloudRunCells": json.dumps(cells)}
    assert main(["gcp-prod", *_args(config)]) == 2
    err = capsys.readouterr().err
    assert "maxConcurrentSessions=3700 + reserveMaxIdle=400 = 4100" in err and "4 projects (cloudRunCells)" in err, err


def test_a_cell_of_another_project_must_name_its_bots_account(capsys: pytest.CaptureFixture[str]) -> None:
    """The stack passes its own bot job's account as CLOUDRUN_BOT_SERVICE_ACCOUNT_ID, which a cell without
    `bot_service_account_id` takes (cloudrun/settings.py `for_cell`); the stack's notes have each cell's job
    run as the cell's own bots' account, whose identity tokens the dispatcher would then refuse."""
    config = {"botRuntime": "cloudrun", "maxConcurrentSessions": "900", "cloudRunCells": _cells()}
    assert main(["gcp-prod", *_args(config)]) == 2
    err = capsys.readouterr().err
    assert "voicefleet:cloudRunCells" in err and "bot_service_account_id" in err and "cell a" in err, err
