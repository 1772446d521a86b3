"""Review of "one project's cells in several zones share its first cell's insert bucket": the pace is now the
project's, but a project's refusal still drains only the cell whose insert it answered. Compute Engine's
rateLimitExceeded is the project's (the very reason the bucket is shared), so the project's other zone stays
open and the next session homed there sends its insert to the same refusing project: an extra failed insert
(and a slower cold start) per cell of that project, every time the drain runs out."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.gce.cells import GceCellMachines
from dispatcher.machines.gce.settings import GceSettings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_gce_cells import LONG_DRAIN, PROJECTS, cells_env
from tests.fakes.gce import FakeGce, rate_limit_body
from tests.support.cells import homed_in

SHARED = PROJECTS["a"]  # listed twice: two zones of one project


@pytest.fixture
def fake(fake_gce: FakeGce) -> FakeGce:
    for project in PROJECTS.values():
        fake_gce.add_project(project)
    return fake_gce


def _inserts_in(gce: FakeGce, project: str) -> int:
    return len([c for c in gce.calls_to("POST", "/instances") if f"/projects/{project}/" in c.path
                and not c.path.endswith("/setLabels")])


async def test_a_project_refusing_for_its_rate_is_drained_in_every_zone_it_is_listed(fake: FakeGce) -> None:
    cells = [{"name": "b", "project": SHARED, "zone": "europe-west1-b"},
             {"name": "c", "project": SHARED, "zone": "europe-west1-c"},
             {"name": "d", "project": PROJECTS["b"]}]
    machines = GceCellMachines(GceSettings.from_env({**cells_env(fake), "GCE_CELLS": json.dumps(cells)}),
                               LocalCoordination(), drain_base=LONG_DRAIN)
    try:
        fake.fail(403, body=rate_limit_body(), method="POST", path_contains=f"/projects/{SHARED}/", times=5)
        [first] = homed_in(machines, "b")
        [second] = homed_in(machines, "c")
        await machines.launch(spec(first))
        assert _inserts_in(fake, PROJECTS["b"]) == 1  # the first ran in the other project
        await machines.launch(spec(second))
        assert _inserts_in(fake, PROJECTS["b"]) == 2  # and so did the second
        assert _inserts_in(fake, SHARED) == 1, "the refusing project was sent another insert through its other zone"
    finally:
        await machines.aclose()


def in_two_regions(fake: FakeGce) -> GceCellMachines:
    """The shared project in two zones of one region and one of another, and another project."""
    cells = [{"name": "b", "project": SHARED, "zone": "europe-west1-b"},
             {"name": "c", "project": SHARED, "zone": "europe-west1-c"},
             {"name": "e", "project": SHARED, "zone": "us-east1-b"},
             {"name": "d", "project": PROJECTS["b"]}]
    return GceCellMachines(GceSettings.from_env({**cells_env(fake), "GCE_CELLS": json.dumps(cells)}),
                           LocalCoordination(), drain_base=LONG_DRAIN)


@pytest.mark.parametrize(("failure", "drained"), [("ZONE_RESOURCE_POOL_EXHAUSTED", {"b"}),
                                                  ("QUOTA_EXCEEDED", {"b", "c"})],
                         ids=["zone-capacity", "regional-quota"])
async def test_a_failed_insert_drains_the_cells_that_share_what_failed(
        fake: FakeGce, failure: str, drained: set[str]) -> None:
    """A zone's exhausted capacity is that zone's alone; a quota is the project's in its region, so the
    project's cell in another region stays open."""
    machines = in_two_regions(fake)
    try:
        fake.projects[SHARED].insert_error = failure
        [session] = homed_in(machines, "b")
        assert (await machines.launch(spec(session))).created  # accepted: the operation fails later
        failed = await machines.status(session)
        assert failed is not None and failed.detail == failure
        assert {name for name in machines.cells.names if machines.cells.drained(name)} == drained
    finally:
        await machines.aclose()
