"""The concurrency ceiling of Compute Engine bots spread over cells (`gceCells`), from each cell's own.

Each cell is a project with its own mutation rate and CPU quota, and the dispatcher paces each
project's inserts on its own (its first cell's `gce:<cell>` bucket, dispatcher/machines/gce/cells.py), so
both add up over the projects: a session goes to the cell its id hashes to and, that one full or refusing, on to
the next, so the sessions spread over them all. Each cell's figures are stacks/config/ceiling.py's
`gce`, for its project and region; its CPU quota counts only where a preview read it
(`accountQuotas`), and with any cell's unknown what the sessions need of them together is said
instead. With cells the dispatcher runs no warm reserve (every start is cold), so none is counted.
A cell's `max_instances`, each dispatcher replica's own cap below its quota, is not counted. A project's
API rate is per project and its CPUS quota per project and region: cells in two zones of one project
(for its zones' capacity) count them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from stacks.config import ceiling
from stacks.config.ceiling import READ_CLOUD_QUOTAS, Ceiling, Limit
from stacks.config.gce_cells import CELLS_KEY, CellPlace

SHOWN_CELLS = 3  # a note names the first few cells' commands, then how many more


@dataclass(frozen=True)
class CellQuota:
    """A cell's place and its CPU quota as a preview read it (None: not read)."""

    place: CellPlace
    cpu_quota: float | None = None


def _first(items: Sequence[str]) -> str:
    more = len(items) - SHOWN_CELLS
    return "; ".join(items[:SHOWN_CELLS]) + (f"; and {more} more cell(s) alike" if more > 0 else "")


def _show(place: CellPlace, metric: str) -> str:
    return (f"`gcloud compute regions describe {place.region} --project {place.project} --flatten=quotas "
            f"--filter=quotas.metric={metric} --format='value(quotas.limit,quotas.usage)'`")


def gce_cells(cells: Sequence[CellQuota], machine_type: str, call_minutes: float, sessions: int, *,
              reserve: int = 0) -> Ceiling:
    """Compute Engine over `cells` (at least one): the rates and, where every cell's was read, the CPU quotas,
    added once per project (rate) and per project and region (CPUS): cells in two zones of one project share both.
    `reserve`: the warm reserve's VMs at most, which run over the cells too."""
    listed = len(cells)
    cells = list({(c.place.project, c.place.region): c for c in reversed(cells)}.values())[::-1]
    each = [ceiling.gce(c.place.project, c.place.region, machine_type, call_minutes, sessions, cpu_quota=c.cpu_quota)
            for c in cells]
    count = len(cells)
    by_project = list({c.place.project: found for c, found in zip(cells, each, strict=True)}.values())
    projects = len(by_project)
    spread = f"{projects} projects ({CELLS_KEY}" + (f", {listed} cells)" if listed > projects else ")")
    rate = each[0].limits[0]
    launches = replace(rate, figure=rate.figure * projects, bots=sum(found.limits[0].bots for found in by_project),
                       how=f"{rate.how}, in each of {spread}: each its own rate, the dispatcher pacing each on its own")
    regions = sorted({c.place.region for c in cells})
    where = f"{spread}, {', '.join(regions)}"
    metric = ceiling.gce_cpu_metric(machine_type)
    vcpus = ceiling.gce_vcpus(machine_type)
    quotas = [found.limits[1] for found in each if len(found.limits) > 1]
    if len(quotas) == count:  # every cell's quota read: they add up
        assert vcpus is not None  # ceiling.gce counts a read quota only with a known shape
        figure = sum(limit.figure for limit in quotas)
        read = " + ".join(f"{c.place.name}: {limit.figure:,g}" for c, limit in zip(cells, quotas, strict=True))
        cpus = Limit(f"Compute Engine {metric} quotas of the cells' projects", metric, figure, "vCPUs",
                     sum(limit.bots for limit in quotas), rate=False, origin=READ_CLOUD_QUOTAS, per_bot=vcpus,
                     how=f"{read} vCPUs, each cell's project's ÷ {vcpus} vCPUs a bot ({machine_type}); "
                         "every VM in a project and region on this quota takes from it, other stacks' too",
                     show=_first([_show(c.place, metric) for c in cells]),
                     raise_it=f"a quota increase request in each cell's project, in the console, IAM & Admin > "
                              f"Quotas (Compute Engine API, {ceiling.GCE_CPU_QUOTA_IDS.get(metric, metric)}), "
                              "{needed} vCPUs in all, or more projects in " + CELLS_KEY)
        return Ceiling("Compute Engine", where, (launches, cpus))
    # A session is counted as maxConcurrentSessions counts it: one VM, booting or not (stacks/config/ceiling.py).
    bots = sessions + reserve
    vms = f"{bots:,} VMs ({sessions:,} sessions + {reserve:,} reserve)" if reserve else f"{bots:,} VMs"
    need = (f"{vms} × {vcpus} vCPUs ({machine_type}) = {bots * vcpus:,}"
            if vcpus is not None else f"{vms}' vCPUs ({machine_type})")
    unread = [c.place for c, found in zip(cells, each, strict=True) if len(found.limits) == 1]
    needs = (f"Compute Engine's {metric} quota of each cell's project has no documented default (it varies by "
             f"project), and this plan knows {'none' if len(unread) == count else 'not all'} of the cells' quotas "
             f"(unread: {', '.join(p.name for p in unread)}), so it does not count them: together they must "
             f"hold {need}, each about its share as the sessions spread over the cells; yours: "
             f"{_first([f'{p.name}: {_show(p, metric)}' for p in unread])}; raise them in the console, IAM & Admin > "
             "Quotas; `accountQuotas: true` reads them in a preview",)
    return Ceiling("Compute Engine", where, (launches,), needs)
