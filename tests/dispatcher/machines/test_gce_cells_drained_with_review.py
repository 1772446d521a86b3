"""Review of "a refusal drains every cell sharing its bucket" (GceCellMachines.drained_with): any refusal that
names neither a quota nor an exhausted zone now drains every cell of the project, in every region, as if its
cause were the project's. A cell may name its own instance template (GCE_CELLS `instance_template`, a global
template of the cell's project: gce/cell_settings.py): one cell whose template is missing (deleted, mistyped)
answers 404 for its own launches alone, yet each of them drains the project's other cells, whose templates
are there, for the drain's growing backoff: a deployment listing one project in several zones (the shared-bucket
case this change serves) loses every zone to one cell's mistake. Before the change only that cell was drained.
Now only the rate drains the whole project; a missing template the cells inserting from it; a refused grant
its cell, or the region Google names."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.gce.cells import GceCellMachines
from dispatcher.machines.gce.settings import GceSettings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_gce_cells import LONG_DRAIN, PROJECTS, cells_env
from tests.dispatcher.machines.test_gce_cells_shared_project_review import SHARED, in_two_regions
from tests.dispatcher.machines.test_gce_cells_shared_project_review import fake as fake  # noqa: F401  (fixture)
from tests.fakes.gce import FakeGce
from tests.support.cells import homed_in


def _machines(fake: FakeGce) -> GceCellMachines:
    cells = [{"name": "b", "project": SHARED, "zone": "europe-west1-b"},  # the deployment's template: there
             {"name": "c", "project": SHARED, "zone": "europe-west1-c", "instance_template": "vf-bot-retired"},
             {"name": "d", "project": PROJECTS["b"]}]
    return GceCellMachines(GceSettings.from_env({**cells_env(fake), "GCE_CELLS": json.dumps(cells)}),
                           LocalCoordination(), drain_base=LONG_DRAIN)


def _drained(machines: GceCellMachines) -> set[str]:
    return {name for name in machines.cells.names if machines.cells.drained(name)}


async def test_one_cells_missing_template_drains_that_cell_alone(fake: FakeGce) -> None:
    machines = _machines(fake)
    try:
        [session] = homed_in(machines, "c")
        assert (await machines.launch(spec(session))).created  # it went on to a cell whose template is there
        assert "c" in _drained(machines)  # the cell that lacks its template is set aside (baseline)
        assert _drained(machines) == {"c"}, "cell b, whose template is there, was drained for cell c's template"
    finally:
        await machines.aclose()


def _forbidden(message: str) -> dict[str, object]:
    """Compute Engine's 403 for a permission the caller lacks on one resource of the insert."""
    return {"error": {"code": 403, "message": message, "errors": [{"reason": "forbidden", "message": message}]}}


@pytest.mark.parametrize(("message", "drained"), [
    (f"Required 'compute.subnetworks.use' permission for 'projects/{SHARED}/regions/europe-west1/subnetworks/bots'",
     {"b", "c"}),
    (f"Required 'compute.instances.create' permission for 'projects/{SHARED}/zones/europe-west1-b/instances/x'",
     {"b"}),
], ids=["names-its-region", "names-none"])
async def test_a_refused_grant_drains_its_cell_or_the_region_it_names(
        fake: FakeGce, message: str, drained: set[str]) -> None:
    """A grant refused on a region's subnetwork is every cell's of the project in that region; one refused
    otherwise is that cell's: the project's cells in another region, and other projects, stay open."""
    machines = in_two_regions(fake)
    try:
        fake.fail(403, body=_forbidden(message), method="POST", path_contains="/zones/europe-west1-b/", times=1)
        [session] = homed_in(machines, "b")
        assert (await machines.launch(spec(session))).created
        refused = {view.name for view in machines.views() if view.drained_until is not None
                   and view.reason == "its grant was refused (the dispatcher's log says how)"}
        assert refused == drained  # (the launch going on may drain others for their own answers)
    finally:
        await machines.aclose()
