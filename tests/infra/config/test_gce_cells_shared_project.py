"""Review: one project listed as two `gceCells` cells (two zones of one region) must not count its quotas twice.

`gce_cells` (dispatcher/machines/gce/cell_settings.py) refuses a project *and zone* listed twice, saying "a
project's quotas in a zone are not doubled by listing it twice", but Compute Engine's CPU quota is per project
and *region* (CPUS-per-project-region) and its API rate quotas are per project ("These quotas apply on a
per-project basis", cloud.google.com/compute/api-quota). So two zones of one project are accepted, and the
ceiling (stacks/config/ceiling_cells.py) adds that one regional quota and that one project rate to themselves;
the dispatcher paces each cell's bucket (`gce:<cell>`) at full speed against the one project rate too.
"""

from __future__ import annotations

import json

from dispatcher.machines.gce.cell_settings import gce_cells as parse
from dispatcher.settings import SettingsError
from stacks.config import ceiling
from stacks.config.ceiling_cells import CellQuota, gce_cells
from stacks.config.gce_cells import places

ONE_PROJECT_TWO_ZONES = json.dumps([{"name": "b", "project": "voicefleet-cell", "zone": "europe-west1-b"},
                                    {"name": "c", "project": "voicefleet-cell", "zone": "europe-west1-c"}])


def test_one_projects_regional_cpu_quota_and_api_rate_are_counted_once_however_many_zones_list_it() -> None:
    try:
        cells = parse(ONE_PROJECT_TWO_ZONES, "europe-west1-b")
    except SettingsError:
        return  # refused as the same quotas listed twice: also a fix
    # The preview reads the one quota (CPUS-per-project-region of voicefleet-cell in europe-west1) once per cell.
    found = gce_cells([CellQuota(place, 24) for place in places(cells, "europe-west1-b")], "e2-standard-2", 4, 100)
    launches, cpus = found.limits
    assert cpus.figure == 24 and cpus.bots == 12  # one project's 24 vCPUs in europe-west1: 12 VMs, not 24
    one_project = ceiling.gce("voicefleet-cell", "europe-west1", "e2-standard-2", 4, 100, cpu_quota=24).limits[0]
    assert launches.bots <= one_project.bots  # one project's mutation rate, however many cells name it
