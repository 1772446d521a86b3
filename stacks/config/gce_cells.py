"""`gceCells`: the GCP projects a stack's Compute Engine bots spread over (the dispatcher's GCE_CELLS).

Each cell is a project (and zone) with its own CPU and instance quotas and its own per-minute API
rate quotas (dispatcher/machines/gce/cells.py). The stack reads the list as the dispatcher reads
GCE_CELLS (one parser), passes it on, turns on the store the dispatcher needs for it (each session's
cell is recorded there), counts each project's rate and CPU quota in the ceiling
(stacks/config/ceiling_cells.py) and names, for each release, the instance template each cell's
project must hold (stacks/gcp/cell_templates.py). It makes nothing in the cells' projects.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.machines.gce.cell_settings import GceCell, gce_cells
from stacks.config import cells as stack_cells
from stacks.config.reader import Reader

CELLS_KEY = "gceCells"


@dataclass(frozen=True)
class CellPlace:
    """Where a cell's VMs run: its name, project and the region of its zone."""

    name: str
    project: str
    region: str


def cells(cfg: Reader, zone: str, *, bot_runtime: str) -> tuple[GceCell, ...]:
    """The projects `gceCells` lists, read as the dispatcher reads GCE_CELLS (`zone`: the stack's, GCE_ZONE)."""
    return stack_cells.read(cfg, CELLS_KEY, lambda raw: gce_cells(raw, zone), runtime="gce", bot_runtime=bot_runtime,
                            otherwise="Cloud Run bots spread over cloudRunCells")


def listed(setting: str, zone: str) -> tuple[GceCell, ...]:
    """The cells of a GCE_CELLS value the stack's settings hold (`cells_setting`'s, checked: "" none)."""
    return gce_cells(setting, zone) if setting else ()


def places(listed: tuple[GceCell, ...], zone: str) -> tuple[CellPlace, ...]:
    """Each cell's project and region (a zone is its region and a letter)."""
    return tuple(CellPlace(cell.name, cell.project, (cell.zone or zone).rsplit("-", 1)[0]) for cell in listed)


def places_listed(text: str, zone: str) -> tuple[CellPlace, ...] | None:
    """The cells a stack file's `gceCells` lists (() none); None: a list the dispatcher would refuse."""
    found = stack_cells.from_file(text, lambda raw: gce_cells(raw, zone))
    return None if found is None else places(found, zone)


def cells_setting(listed: tuple[GceCell, ...]) -> str:
    """GCE_CELLS for the dispatcher: the cells as JSON, each with the fields it set."""
    return stack_cells.setting(listed)
