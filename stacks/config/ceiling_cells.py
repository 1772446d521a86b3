"""The concurrency ceiling of bots spread over cells (`gceCells`, `ecsCells`), from each cell's own.

Each cell is a project with its own mutation rate and CPU quota, and the dispatcher paces each
project's inserts on its own (its first cell's `gce:<cell>` bucket, dispatcher/machines/gce/cells.py), so
both add up over the projects, over which the sessions spread. Each cell's figures are stacks/config/ceiling.py's
`gce`, for its project and region; its CPU quota counts only where a preview read it (`accountQuotas`), and
with any cell's unknown what the sessions need of them together is said instead. The warm reserve's VMs are
counted beside the sessions'; a cell's `max_instances` (a soft cap on its VMs) is not. Cells in two zones
of one project count its API rate and CPUS quota once.

ECS cells (`ecsCells`) are accounts, each with its own Fargate launch bucket (the dispatcher paces each
account's RunTask on its own, `ecs:<cell>`) and its own vCPU quotas, so both add up over the accounts
too; the ECS_CELLS parser refuses an account listed twice. Each account's quotas count at their
documented default: `accountQuotas` reads only the stack's own account, which runs the dispatcher and
no bot (a cell in it aside). The dispatcher's tasks take from that account's quota, not a cell's, and
the warm reserve runs over the cells (docs/reserve.md, "Over cells"), so its bots are counted.

ACI cells (`aciCells`) are subscriptions, each with its own create budget, groups and cores (documented
defaults) and its own pace (`aci:<cell>`), so all three add up (docs/operations.md, Cells); a cell that
states its own budget (`create_rate`: one Azure raised, or one other workloads share) counts that instead
of the documented one, as the dispatcher paces it; with a bot channel the warm reserve runs over the
cells, so its groups and cores are counted as for one subscription. `k8sCells`: each cluster's max_pods, once
(every replica counts every replica's pods, idle ones too), summed (quota, nodes unread); one unset: unbounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from dispatcher.machines.aci.cell_settings import AciCell
from dispatcher.machines.aci.settings import DEFAULT_CREATE_RATE
from dispatcher.machines.ecs.cell_settings import EcsCell
from dispatcher.machines.k8s.cell_settings import K8sCell
from stacks.config import ceiling
from stacks.config.aci_cells import CELLS_KEY as ACI_CELLS_KEY
from stacks.config.ceiling import ACCOUNT_DEFAULT, READ_CLOUD_QUOTAS, STATED, Ceiling, Limit
from stacks.config.ecs_cells import CELLS_KEY as ECS_CELLS_KEY
from stacks.config.gce_cells import CELLS_KEY, CellPlace
from stacks.config.k8s_cells import CELLS_KEY as K8S_CELLS_KEY

SHOWN_CELLS = 3  # a note names the first few cells' commands, then how many more


@dataclass(frozen=True)
class CellQuota:
    """A cell's place and its CPU quota as a preview read it (None: not read)."""

    place: CellPlace
    cpu_quota: float | None = None


def _first(items: Sequence[str], sep: str = "; ") -> str:
    more = len(items) - SHOWN_CELLS
    return sep.join(items[:SHOWN_CELLS]) + (f"{sep}and {more} more cell(s) alike" if more > 0 else "")


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


def accounts(cells: Sequence[EcsCell]) -> list[str]:
    """Each ECS cell as a note names it: its name and account."""
    return [f"{cell.name} ({cell.account})" for cell in cells]


def fargate_cells(accounts: Sequence[str], region: str, bot_cpu_units: int, call_minutes: float, *,
                  spot: float = 0.0) -> Ceiling:
    """ECS on Fargate over the cells' `accounts` (at least one, each listed once; each as the note names it, its
    cell's name and account): one account's launch bucket and
    vCPU quotas (ceiling.fargate, at their documented defaults and with no dispatcher task in them), each held by
    every account on its own, so they add up."""
    count = len(accounts)
    one = ceiling.fargate(region, bot_cpu_units, call_minutes, spot=spot, dispatchers=ceiling.Dispatchers(0, 0))
    spread = f"{count} account{'s' if count > 1 else ''} ({ECS_CELLS_KEY}: {_first(list(accounts))})"
    limits = []
    for limit in one.limits:
        if limit.rate:
            how = f"{limit.how}, in each of {spread}: each its own bucket, the dispatcher pacing each on its own"
            raise_it = f"fixed per account and region: more accounts in {ECS_CELLS_KEY}, or more regions"
        else:
            each = f"{limit.figure:g} vCPUs ÷ {limit.per_bot:g} vCPU a bot = {limit.bots:,} bots"
            how = (f"{each} in each of {spread} ({ACCOUNT_DEFAULT}: accountQuotas reads only the stack's own account, "
                   f"which runs the dispatcher, not the bots); {ceiling.FARGATE_SHARED}")
            raise_it = (f"with each cell account's credentials, `aws service-quotas request-service-quota-increase "
                        f"--service-code fargate --quota-code {limit.code} --desired-value SHARE --region {region}`, "
                        f"SHARE being the account's part of the {{needed}} vCPUs in all (about {{needed}} ÷ {count}: "
                        f"the sessions spread over the accounts), or more accounts in {ECS_CELLS_KEY}")
        limits.append(replace(limit, figure=limit.figure * count, bots=limit.bots * count, how=how, raise_it=raise_it,
                              show=f"{limit.show}, with each cell account's credentials" if not limit.rate else
                              limit.show))
    return Ceiling("Fargate", f"{region}, {spread}", tuple(limits))


def aci_cells(cells: Sequence[AciCell], bot_cpu_units: int, call_minutes: float) -> Ceiling:
    """Azure Container Instances over `cells` (at least one, each subscription and location listed once): one
    subscription's create budget, groups and cores in its location (ceiling.aci), each held by every cell on its
    own, so they add up."""
    count = len(cells)
    one = ceiling.aci(cells[0].location, bot_cpu_units, call_minutes)
    named = [f"{cell.name} ({cell.subscription_id}, {cell.location})" for cell in cells]
    spread = f"{count} subscription{'s' if count > 1 else ''} ({ACI_CELLS_KEY}: {_first(named)})"
    limits = [_aci_launches(cells, limit, call_minutes, spread) if limit.rate else replace(
        limit, figure=limit.figure * count, bots=limit.bots * count,
        how=f"{limit.how} in each of {spread} ({ACCOUNT_DEFAULT}: a preview reads no cell's)",
        raise_it=(f"{limit.raise_it} in each cell's subscription, each about its share of the {{needed}} "
                  f"{limit.unit} in all (about {{needed}} ÷ {count}: the sessions spread over the cells), or "
                  f"more subscriptions in {ACI_CELLS_KEY}"),
        show=f"{limit.show}, for each cell's subscription and location") for limit in one.limits]
    locations = ", ".join(sorted({cell.location for cell in cells}))
    return Ceiling("Azure Container Instances", f"{locations}, {spread}", tuple(limits),
                   tuple(filter(None, map(_past_azures_windows, cells))))


def _past_azures_windows(cell: AciCell) -> str:
    """What a cell's stated create budget lets through past ACI's documented windows for a subscription and
    location (ceiling.ACI_CREATES_PER_5_MINUTES, ACI_CREATES_PER_HOUR, each of creates and deletes), which the
    dispatcher's own default keeps within with one budget for both: said, for a budget Azure did not raise is
    refused there, not at preview (a preview reads no cell's limits). "" when it keeps within them, or states none.
    A stack sets no ACI_CREATE_RATE of its own: a field the cell leaves out is the dispatcher's default."""
    if cell.create_rate is None and cell.create_burst is None:
        return ""
    rate = DEFAULT_CREATE_RATE.per_second if cell.create_rate is None else cell.create_rate
    burst = DEFAULT_CREATE_RATE.burst if cell.create_burst is None else cell.create_burst
    windows = ((rate * 300 + burst, ceiling.ACI_CREATES_PER_5_MINUTES, "5 minutes"),
               (rate * 3600 + burst, ceiling.ACI_CREATES_PER_HOUR, "an hour"))
    past = [(math.ceil(through - 1e-9), documented, window) for through, documented, window in windows
            if through > documented + 1e-9]
    if not past:
        return ""
    said = " and ".join(f"{through:,} in {window} (ACI documents {documented})" for through, documented, window in past)
    return (f"{ACI_CELLS_KEY} cell {cell.name}'s create budget ({rate:g} a second, {burst} at once) lets up to "
            f"{said} creates and deletes through for a subscription and location ({ceiling.ACI_LIMITS_PAGE}): right "
            f"only where Azure raised {cell.subscription_id}'s limits in {cell.location} "
            f"({ceiling.ACI_SUPPORT_REQUEST}); else ACI refuses the creates past them, and the dispatcher rests the "
            "cell for a backoff")


def _aci_launches(cells: Sequence[AciCell], one: Limit, call_minutes: float, spread: str) -> Limit:
    """The cells' create budgets added up: `one` subscription's (documented) for each cell that states none,
    and its own (ceiling.aci_launches) for each that states a `create_rate`."""
    raise_it = (f"{one.raise_it.split(', then', 1)[0]}, in each cell's subscription, then that cell's create_rate "
                f"in {ACI_CELLS_KEY} to match (its pace; unset: the dispatcher's ACI_CREATE_RATE); or more "
                f"subscriptions in {ACI_CELLS_KEY}")
    budgets: dict[float | None, list[str]] = {}  # a stated create_rate (None: none) → the cells stating it
    for cell in cells:
        budgets.setdefault(cell.create_rate, []).append(cell.name)
    paced = "each its own budget, the dispatcher pacing each on its own"
    if list(budgets) == [None]:
        return replace(one, figure=one.figure * len(cells), bots=one.bots * len(cells), raise_it=raise_it,
                       how=f"{one.how}, in each of {spread}: {paced}")
    each = {rate: one if rate is None else ceiling.aci_launches(call_minutes, rate) for rate in budgets}
    how = "; ".join(f"{_first(names, ', ')}: {each[rate].how} = {each[rate].bots:,}{' each' if len(names) > 1 else ''}"
                    for rate, names in budgets.items())
    stated = [name for rate, names in budgets.items() if rate is not None for name in names]
    return replace(one, figure=sum(each[rate].figure * len(names) for rate, names in budgets.items()),
                   bots=sum(each[rate].bots * len(names) for rate, names in budgets.items()), raise_it=raise_it,
                   origin=STATED if None not in budgets else f"{ACCOUNT_DEFAULT}; {_first(stated, ', ')}: {STATED}",
                   how=f"{how}, added over {spread}: {paced}")


def k8s_cells(cells: Sequence[K8sCell], sessions: int, *, reserve: int = 0) -> Ceiling:
    """Kubernetes over `cells` (at least one): each cluster holds its cell's `max_pods`, counted once for the
    deployment (ceiling.cell_cap_counted), and all of them together the sum, reserve pods among them; a cell
    with no `max_pods` is held by its namespace's ResourceQuota and its nodes, which no preview reads: then
    nothing is counted, and what `sessions` and `reserve` reserve pods need of the clusters is said instead."""
    count = len(cells)
    spread = f"{count} cluster{'s' if count > 1 else ''} ({K8S_CELLS_KEY}: {_first([c.name for c in cells], ', ')})"
    pods_needed = f"{sessions:,} sessions" + (f" and {reserve:,} reserve pods" if reserve else "")
    if open_ := [cell.name for cell in cells if cell.max_pods is None]:
        bounded = sum(cell.max_pods or 0 for cell in cells)
        return Ceiling("Kubernetes", spread, (), (
            f"unbounded here: cell(s) {_first(open_, ', ')} set no max_pods, so only their namespace's "
            f"ResourceQuota and nodes hold them, which the stack does not read (another cluster's); "
            + (f"the others hold {bounded:,} pods; " if bounded else "")
            + f"{pods_needed} need about {math.ceil((sessions + reserve) / count):,} pods in each cluster's "
            f"quota and nodes; set each cell's max_pods to have it counted",))
    total = sum(cell.max_pods or 0 for cell in cells)
    each = " + ".join(f"{cell.name} {cell.max_pods:,}" for cell in cells[:SHOWN_CELLS]) + (
        f" + {count - SHOWN_CELLS} more" if count > SHOWN_CELLS else "")
    pods = Limit("Kubernetes cells' max_pods", "", total, "pods", total, rate=False, origin=STATED, per_bot=1,
                 how=f"max_pods ({each}), {ceiling.cell_cap_counted('bot pods', 'namespace')}",
                 show=f"{K8S_CELLS_KEY}, and each cluster's `kubectl -n <namespace> describe resourcequota`",
                 raise_it=f"a higher max_pods in the cells ({{needed}} pods in all), within each cluster's "
                          f"ResourceQuota and nodes, or more clusters in {K8S_CELLS_KEY}")
    return Ceiling("Kubernetes", spread, (pods,))
