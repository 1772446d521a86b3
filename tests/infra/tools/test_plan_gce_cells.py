"""gcp-prod planned with its Compute Engine bots spread over projects (`gceCells`), through `stacks.plan`:
the list reaches the dispatcher (GCE_CELLS) and the drain (machinesEnvironment), read as the dispatcher
reads it and refused naming the key; the store it needs is made; the ceiling counts each project's rate
and, read by a preview, each project's CPU quota; and every release's template is named for the cells."""

from __future__ import annotations

import json
from functools import cache

import pytest
from pulumi.runtime import mocks as pulumi_mocks

from stacks.config.ceiling_notes import stack_notes
from stacks.tools import mocks
from stacks.tools.mocks import Run
from stacks.tools.plan import checked_plan
from tests.infra.conftest import StackRunner
from tests.infra.helpers import component_outputs
from tests.infra.settings_read import refusal
from tests.infra.tools.plan_cells import THREE_CELLS, listed_projects, refused, value_after
from tests.infra.tools.test_plan_ceiling import CLOUD_QUOTAS_TOKEN, EngineRefusal, _ceiling, _cloud_quotas, _run_said

CELLS = {"gceCells": THREE_CELLS}


@cache
def _cells_plan() -> tuple[str, list[str], list[str]]:
    """gcp-prod's plan with the three cells (nothing patched): read by two tests, made once (three runs of 4 s)."""
    return checked_plan("gcp-prod", CELLS)


def test_gce_cells_reach_the_dispatcher_and_count_each_projects_rate() -> None:
    text, problems, notes = _cells_plan()
    assert problems == []  # among them the dispatcher's own reading of its environment
    assert listed_projects(text, "GCE_CELLS") == [f"voicefleet-cell-{c}" for c in "abc"]
    (note,), _ = _ceiling(notes)
    # each project its own 10 inserts a second (the dispatcher's pace, below its 25 mutations ÷ 2): 3 × 2,400
    assert note.startswith("concurrency ceiling (Compute Engine, 3 projects (gceCells), europe-west1): 7,200 sessions")
    assert "in each of 3 projects (gceCells)" in note, note
    # no project's CPUS quota is known offline: what they need together is said (the reserve's VMs too), per cell
    assert "this plan knows none of the cells' quotas (unread: a, b, c)" in note, note
    assert "2,900 VMs (2,500 sessions + 400 reserve) × 2 vCPUs (e2-standard-2) = 5,800" in note, note
    assert all(f"--project voicefleet-cell-{c} " in note for c in "abc"), note


def test_gce_cells_reach_the_drain(stack: StackRunner) -> None:
    run: Run = stack("gcp", gceCells=THREE_CELLS)
    environment = component_outputs(run, "gcp")["machinesEnvironment"]
    assert [cell["project"] for cell in json.loads(environment["GCE_CELLS"])] == [
        f"voicefleet-cell-{c}" for c in "abc"]


def test_gce_cells_make_the_store_even_for_one_dispatcher_instance() -> None:
    small = {"dispatcherMaxInstances": "1", "maxConcurrentSessions": "20", "reserveMaxIdle": "5"}
    alone, problems, _ = checked_plan("gcp-prod", small)
    assert problems == [] and "gcp:memorystore/instance:Instance" not in alone  # one instance: no store
    text, problems, _ = checked_plan("gcp-prod", {**small, **CELLS})
    assert problems == [] and "gcp:memorystore/instance:Instance" in text  # each session's project is recorded there
    assert value_after(text, "REDIS_URL")


def test_a_stack_with_gce_cells_is_told_the_template_each_cell_project_must_hold_for_this_build() -> None:
    """Each build names a new release template (`<prefix>--bot-` and generated characters), which each cell
    inserts from by that name in its own project: the stack makes it in its own project only, so the plan
    names, for this build, the template each cell must hold, and the grants."""
    text, problems, notes = _cells_plan()
    assert problems == []
    template = value_after(text, "GCE_INSTANCE_TEMPLATE").rsplit("/", 1)[-1]
    assert template.startswith("voicefleet-gcp-prod--bot-")  # this build's release template
    [told] = [note for note in notes if f"instance template {template} " in note]
    assert all(f"voicefleet-cell-{c} (europe-west1-b)" in told for c in "abc"), told
    assert f"instance-templates describe {template} --project voicefleet-prod" in told, told
    # gcloud's `instance-templates create` takes no template whole: the REST insert takes its properties as
    # they are (scheduling, shielded VM, metadata), only the account and subnetwork changed to the cell's
    assert "instance-templates create" not in told, told
    copy = told.split("--format json", 1)[1]
    assert "properties: (.properties | .serviceAccounts[0].email = $account" in copy, told
    assert "/compute/v1/projects/CELL_PROJECT/global/instanceTemplates" in copy, told
    assert "serviceAccount:" in told.split("the dispatcher (", 1)[1], told  # the dispatcher's account, named
    assert "roles/artifactregistry.reader on voicefleet-gcp-prod in voicefleet-prod" in told, told


def test_account_quotas_reads_each_cells_cpus_quota_and_counts_them_together(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _cloud_quotas(monkeypatch, [
        {"dimensions": {"region": "europe-west1"}, "details": [{"value": "1500"}],
         "applicableLocations": ["europe-west1"]},
    ])
    notes = _run_said("gcp-prod", {**CELLS, "accountQuotas": "true"})  # said, not refused: the run goes on
    (note,), (warning,) = _ceiling(notes)
    assert sorted({str(a["parent"]) for a in asked}) == [f"projects/voicefleet-cell-{c}" for c in "abc"]
    # each project 1,500 vCPUs ÷ 2 (e2-standard-2) = 750 VMs; 3 × 750 = 2,250 VMs, one a session, less the
    # reserve's 400 (it runs over the cells too) = 1,850 sessions
    assert "Compute Engine CPUS quotas of the cells' projects (CPUS) of 4,500 vCPUs" in note, note
    assert "a: 1,500 + b: 1,500 + c: 1,500 vCPUs" in note and "= 1,850 sessions beside reserveMaxIdle=400" in note, note
    assert "has no documented default" not in note, note
    assert warning.startswith("maxConcurrentSessions=2,500 + reserveMaxIdle=400 = 2,900 bots is above the Compute "
                              "Engine CPUS quotas of the cells' projects"), warning  # the reserve runs over them
    assert "a quota increase request in each cell's project" in warning, warning


def test_a_cell_whose_quota_read_is_refused_is_named_and_the_cells_quotas_are_not_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer = mocks.RecordingMocks.call

    def cell_b_refuses(self: mocks.RecordingMocks, args: pulumi_mocks.MockCallArgs) -> dict[str, object]:
        if args.token != CLOUD_QUOTAS_TOKEN:
            return answer(self, args)
        if args.args["parent"] == "projects/voicefleet-cell-b":
            raise EngineRefusal("Error 403: Permission 'cloudquotas.quotas.get' denied on resource")
        return {"dimensionsInfos": [{"dimensions": {"region": "europe-west1"}, "details": [{"value": "1500"}]}]}

    monkeypatch.setattr(mocks.RecordingMocks, "call", cell_b_refuses)
    notes = _run_said("gcp-prod", {**CELLS, "accountQuotas": "true"})  # said, never a failed preview
    (note,), _ = _ceiling(notes)
    (refused_read,) = [n for n in notes if n.startswith("accountQuotas: ")]
    assert "for cell b's project voicefleet-cell-b was refused" in refused_read, refused_read
    # a and c read, b unknown: a sum would count b's share as nothing, so what the cells need is said instead
    assert "this plan knows not all of the cells' quotas (unread: b)" in note, note
    assert "quotas of the cells' projects" not in note, note


def test_a_wrong_gce_cell_list_is_refused_by_the_plan_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    """The plan's refusal as its user sees it (exit 2, the key named); the other wrong lists below are refused
    by the same read of the settings, which the plan runs first."""
    err = refused("gcp-prod", {"gceCells": '[{"name": "a", "project": "A"}]'}, capsys)
    assert "voicefleet:gceCells" in err and "GCE_CELLS[0] (a): project must be a GCP project id" in err, err


@pytest.mark.parametrize(("config", "said"), [
    ({"botRuntime": "cloudrun", "cloudRunExecutionQuota": "2900", **CELLS}, "is for botRuntime gce only"),
    ({"gceCells": '[{"name": "a", "project": "voicefleet-cell-a"}, {"name": "b", "project": "voicefleet-cell-a"}]'},
     "GCE_CELLS names a project and zone twice: voicefleet-cell-a europe-west1-b"),
    ({"gceCells": json.dumps([{"name": f"c{i}", "project": f"voicefleet-cell-{i}"} for i in range(51)])},
     "GCE_CELLS lists 51 cells: at most 50"),
])
def test_a_wrong_gce_cell_list_is_refused_naming_the_key(config: dict[str, str], said: str) -> None:
    refused_read = refusal("gcp-prod", config)
    assert "voicefleet:gceCells" in refused_read and said in refused_read, refused_read


def test_config_check_says_the_cells_ceiling_from_the_stack_file() -> None:
    config = {"voicefleet:cloud": "gcp", "gcp:project": "voicefleet-prod", "gcp:region": "europe-west1",
              "voicefleet:maxConcurrentSessions": "100", "voicefleet:gceCells": THREE_CELLS}
    [note, store] = stack_notes(config)
    assert note.startswith("note: concurrency ceiling (Compute Engine, 3 projects (gceCells), europe-west1)"), note
    assert store.startswith("note: store ceiling (Memorystore for Valkey, one SHARED_CORE_NANO node")  # cells share one
    assert stack_notes({**config, "voicefleet:gceCells": '[{"name": "a"}]'}) == []  # the check names the value
