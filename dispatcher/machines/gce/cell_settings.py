"""`GCE_CELLS`: the GCP projects a deployment's Compute Engine VMs spread over, as a JSON list.

Each cell names its `project` and may name its own `zone` and `instance_template` (what a cell
leaves out is the deployment's: GCE_ZONE, and GCE_INSTANCE_TEMPLATE's name in the cell's project,
which a stack made alike), and `max_instances`, the most VMs the cell runs, every replica's (a
soft cap read at each listing, under the project's CPU and instance quotas; unset: the quotas alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dispatcher.machines.cell_list import cell_fields, cell_items, gcp_project, matching_field, named_once, whole_number

# Google's own rules: a zone is a region and a letter; a template name up to 63 lower-case letters,
# digits or hyphens, from a letter.
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_TEMPLATE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
FIELDS = ("name", "project", "zone", "instance_template", "max_instances")
EXAMPLE = '[{"name": "a", "project": "voicefleet-cell-a"}, {"name": "b", "project": "voicefleet-cell-b"}]'


@dataclass(frozen=True)
class GceCell:
    name: str
    project: str
    zone: str | None = None
    instance_template: str | None = None
    max_instances: int | None = None


def gce_cells(raw: str, zone: str) -> tuple[GceCell, ...]:
    """The cells `GCE_CELLS` lists (empty: the one project GCE_PROJECT names). `zone`: the
    deployment's, where a cell names none."""
    items = cell_items("GCE_CELLS", raw, EXAMPLE, "GCP project and zone")
    cells = tuple(_cell(item, i) for i, item in enumerate(items))
    named_once("GCE_CELLS", {"a cell": [c.name for c in cells],
                             "a project and zone": [f"{c.project} {c.zone or zone}" for c in cells]},
               "GCP project and zone", "a project's quotas in a zone are not doubled by listing it twice")
    return cells


def _cell(item: Any, index: int) -> GceCell:
    where = f"GCE_CELLS[{index}]"
    item = cell_fields(item, where, FIELDS, EXAMPLE, "name and project")
    name = item["name"]
    project = gcp_project(item, f"{where} ({name})")
    zone = matching_field(item, "zone", where, _ZONE, "a Compute Engine zone, e.g. \"europe-west1-b\"")
    template = matching_field(item, "instance_template", where, _TEMPLATE, "a global instance template's name in "
                              "the cell's project (not its path), e.g. \"voicefleet-bot\"")
    return GceCell(name=name, project=project, zone=zone, instance_template=template,
                   max_instances=whole_number(item, "max_instances", f"{where} ({name})"))
