"""Review of the concurrency ceiling (stacks/config/ceiling.py, ceiling_notes.py) against what the dispatcher
enforces: `maxConcurrentSessions` is the dispatcher's MAX_CONCURRENT_SESSIONS, whose admission counts every
active machine, a booting (STARTING) one included, and with `cloudRunCells` each cell's `max_executions`
holds what runs there, the warm reserve's executions among them (cloudrun/cell_reserve.py)."""

from __future__ import annotations

import json

from dispatcher.machines.base import MachineState
from stacks.config import ceiling
from stacks.config.ceiling_notes import said, stack_notes

ONE_DISPATCHER = ceiling.Dispatchers(1, 256)
REGION = "europe-west1"


def _cloud_run_stack(sessions: int, cells: list[dict[str, object]], **more: str) -> dict[str, str]:
    return {"voicefleet:cloud": "gcp", "voicefleet:botRuntime": "cloudrun", "gcp:project": "voicefleet-prod",
            "gcp:region": REGION, "voicefleet:maxConcurrentSessions": str(sessions),
            "voicefleet:cloudRunCells": json.dumps(cells), **{f"voicefleet:{k}": v for k, v in more.items()}}


def test_a_cap_is_asked_for_max_concurrent_sessions_machines_and_the_reserve_no_more() -> None:
    """The dispatcher admits a start while its active machines, booting ones included, are fewer than
    MAX_CONCURRENT_SESSIONS (dispatcher/sessions/service.py `active_count`, admission.py), so at most
    maxConcurrentSessions + reserveMaxIdle bots run at once, however long each boots."""
    assert MachineState.STARTING.is_active  # a booting machine is one of the sessions admission counts
    # (6 vCPUs - 0.5 for the dispatcher in a deploy) ÷ 0.5 = 11 bots: 10 sessions take 5 + 0.5 ≤ 6 vCPUs
    found = ceiling.fargate("us-east-1", 512, 4, dispatchers=ONE_DISPATCHER)
    _, warnings = said(found, 10, 0)
    assert warnings == [], warnings
    # aws-prod: 2,500 sessions + 400 reserve bots × 1 vCPU + 3 dispatcher vCPUs
    prod = ceiling.fargate("us-east-1", 1024, 4, dispatchers=ceiling.Dispatchers(3, 512)).limits[1]
    assert prod.needed(2500, 400) == "2903"
    # Cloud Run: 900 sessions and 100 reserve bots are 1,000 executions, the preview's own refusal's arithmetic
    executions = ceiling.cloud_run("p", REGION, 4, 1000).limits[1]
    assert executions.sessions(reserve=100) == 900 and executions.needed(900, 100) == "1000"


def test_each_cells_max_executions_holds_what_runs_there() -> None:
    """Three cells capped at 100 executions each (CLOUDRUN_CELLS `max_executions`) and one dispatcher replica
    hold 300 sessions, not the 720 the runs' pace allows nor the 3,000 executions of three projects' quotas."""
    cells = [{"name": c, "project": f"voicefleet-cell-{c}", "max_executions": 100} for c in "abc"]
    note, *warnings = stack_notes(_cloud_run_stack(500, cells, dispatcherMaxInstances="1"))
    assert "300 sessions at once" in note, note
    assert any("max_executions" in warning and "is above" in warning for warning in warnings), warnings


def test_a_cells_max_executions_counts_once_whatever_the_dispatcher_replicas() -> None:
    """Each replica counts a cell's executions from its listing of the project, every replica's
    (dispatcher/machines/cell_launches.py `list`), so `max_executions` holds the deployment's there: with up to 4
    replicas (dispatcherMaxInstances) three cells capped at 100 still run 300, and one capped at 1,200 runs its
    project's 1,000 at most."""
    assert ceiling.cell_executions(1000, [100, 1200, None]) == [100, 1000, 1000]
    cells = [{"name": c, "project": f"voicefleet-cell-{c}", "max_executions": 100} for c in "abc"]
    for replicas in ("1", "4"):
        note, *warnings = stack_notes(_cloud_run_stack(500, cells, dispatcherMaxInstances=replicas))
        held = ("held to their cell's max_executions, counted once, not per dispatcher replica: each replica counts "
                "the cell's executions from its listing of the project, every replica's: 300 in all")
        assert held in note and "300 sessions at once" in note, note
        assert any("is above" in warning and "counted once" in warning for warning in warnings), warnings


def test_cloud_run_cells_count_the_reserve_bots_over_them() -> None:
    """The dispatcher runs its warm reserve over Cloud Run cells (cloudrun/cell_reserve.py), each cell's share
    among its running executions, as the one project counts it: three projects' 3,000 executions hold 2,600
    sessions beside reserveMaxIdle=400, so 2,900 sessions are past them; 2,600 fit."""
    cells = [{"name": c, "project": f"voicefleet-cell-{c}"} for c in "abc"]
    note, *warnings = stack_notes(_cloud_run_stack(2900, cells, reserveMaxIdle="400", botChannel="true"))
    assert "= 2,600 sessions beside reserveMaxIdle=400" in note, note
    assert any("maxConcurrentSessions=2,900 + reserveMaxIdle=400 = 3,300 bots" in w for w in warnings), warnings
    note, *warnings = stack_notes(_cloud_run_stack(2600, cells, reserveMaxIdle="400", botChannel="true"))
    assert not [w for w in warnings if "executions" in w], warnings
