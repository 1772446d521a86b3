"""What `botRuntime: cloudrun` asks of the stack's settings: the reserve's cold-start prior and the quota.

- **Cold start.** The dispatcher's prior for a Cloud Run bot (dispatcher/machines/cloudrun
  `COLD_START`) is the job's own start. The stack adds what its network adds: the bot job leaves by
  Direct VPC egress through a Cloud NAT (stacks/gcp/bot_job.py, network.py), and Google documents,
  for Cloud NAT with Direct VPC egress, "cold-start delays of 30 seconds or more at instance
  startup" (cloud.google.com/run/docs/configuring/vpc-direct-vpc, Limitations; the zh-CN page
  carries that line, the English one "connection establishment delays of a minute or more").
  Nothing the bot sends leaves before then, so the bot's first dial to the dispatcher waits for it,
  and the bot's backoff (botchannel/contract.py `FIRST_DIAL_DELAYS_SECONDS`, a reserve bot's and a
  cold bot's alike) adds the time to its next try: `first_dial_seconds` is that wait, and the prior
  is the job's start plus it.
- **Quota.** "Maximum number of running job executions: 1000 per project and region"
  (cloud.google.com/run/quotas). Every session and every reserve bot is one running execution, so a
  stack whose sessions and reserve can exceed the project's quota would preview fine and refuse
  starts past it (`503 cloudrun_capacity`): refused here instead, unless `cloudRunExecutionQuota`
  states the raised quota Google granted, or `cloudRunCells` spreads the executions over several
  projects (the dispatcher's CLOUDRUN_CELLS, each project with that quota). The stack passes the
  cells on and turns on the store they need; it makes nothing in their projects.
"""

from __future__ import annotations

from collections.abc import Sequence

from botchannel.contract import DIAL_TIMEOUT_SECONDS, FIRST_DIAL_DELAYS_SECONDS
from dispatcher.machines import cloudrun
from dispatcher.machines.cloudrun.cell_settings import CloudRunCell, cloudrun_cells
from stacks.config import ceiling
from stacks.config import cells as stack_cells
from stacks.config.reader import Reader

# Google's lower bound for Cloud NAT with Direct VPC egress (the module docstring): a floor, not a measurement.
DIRECT_VPC_NAT_DELAY_SECONDS = 30.0
EXECUTION_QUOTA_KEY = "cloudRunExecutionQuota"
CELLS_KEY = "cloudRunCells"  # the dispatcher's CLOUDRUN_CELLS: the projects executions spread over
DEFAULT_EXECUTION_QUOTA = 1000  # cloud.google.com/run/quotas: running job executions per project and region
# Far past what Google grants a project (thousands), and within the ceiling's float arithmetic.
MAX_EXECUTION_QUOTA = 1_000_000


def first_dial_seconds(network_delay: float, *, failed_dial_seconds: float = 0.0,
                       delays: Sequence[float] = FIRST_DIAL_DELAYS_SECONDS) -> float | None:
    """When a new bot's first dial gets through, if nothing leaves its task for `network_delay`
    seconds: the bot dials at once, then after each of `delays`; a dial tried too early fails after
    `failed_dial_seconds` (0: refused at once; DIAL_TIMEOUT_SECONDS: its packets dropped).
    None: the bot's tries run out first and it ends, `channel_lost`. Reserve and cold bots alike
    dial on this schedule until they have reached the dispatcher (bot/channel_session.py), a cold
    bot within its connect timeout (BOT_CONNECT_TIMEOUT_SECONDS)."""
    at = 0.0
    for wait in (*delays, None):
        if at >= network_delay:
            return at
        if wait is None:
            return None
        at += failed_dial_seconds + wait
    return None


def cold_start_prior(*, direct_vpc_nat: bool) -> float:
    """The reserve's cold-start prior for the bot job: its start, plus the first dial's wait behind
    Cloud NAT, the dropped-packet case (the longer one) at Google's documented lower bound."""
    start = cloudrun.COLD_START.median_seconds
    if not direct_vpc_nat:
        return start
    wait = first_dial_seconds(DIRECT_VPC_NAT_DELAY_SECONDS, failed_dial_seconds=DIAL_TIMEOUT_SECONDS)
    assert wait is not None  # the bot's ~2 min of tries outlast the documented delay
    return start + wait


def execution_quota(cfg: Reader, *, sessions: int, reserve_max_idle: int,
                    cells: Sequence[CloudRunCell] = ()) -> int:
    """The project's quota of running job executions in the stack's region, checked against what
    the stack may run at once: every session and every idle or warming reserve bot, over the Cloud Run
    `cells` (each project with that quota, or its cell's `max_executions` below it, counted once for the
    deployment: ceiling.cell_cap_counted). The reserve runs over the cells as
    in one project (cloudrun/cell_reserve.py), each cell's share of reserveMaxIdle among its running
    executions, so the shares together count reserveMaxIdle against the cells' executions together."""
    quota = cfg.integer(EXECUTION_QUOTA_KEY, minimum=1, maximum=MAX_EXECUTION_QUOTA)
    reserve = reserve_max_idle
    held = ceiling.cell_executions(quota, [cell.max_executions for cell in cells])
    if sessions + reserve > sum(held):
        capped = [f"{cell.name} {cell.max_executions}" for cell in cells
                  if cell.max_executions is not None and cell.max_executions < quota]
        over = f"{len(cells)} projects ({CELLS_KEY}) × {quota}" if cells else f"{quota} per project and region"
        if capped:
            over += (f", and the dispatcher at most {sum(held)} with the cells' max_executions ({', '.join(capped)}), "
                     f"{ceiling.cell_cap_counted('executions', 'project')},")
        asked = f"maxConcurrentSessions={sessions} + reserveMaxIdle={reserve} = {sessions + reserve}"
        where, lowest = (" in every cell's project", " (the lowest granted)") if cells else ("", "")
        raise cfg.fail(EXECUTION_QUOTA_KEY, (
            f"is {quota}, but botRuntime cloudrun may run {asked} job executions at once: Cloud Run "
            f"runs at most {over} and refuses the rest. Lower maxConcurrentSessions or reserveMaxIdle, or request "
            f"a quota increase (Google Cloud console, IAM & Admin > Quotas, Cloud Run Admin API, running job "
            f"executions{where}) and, once granted, set {EXECUTION_QUOTA_KEY} to it{lowest}"
            + (", raise the cells' max_executions" if capped else "")
            + f", or spread the executions over more projects ({CELLS_KEY})"))
    return quota


def cells(cfg: Reader, project: str, region: str, *, bot_runtime: str) -> tuple[CloudRunCell, ...]:
    """The projects `cloudRunCells` lists, read as the dispatcher reads CLOUDRUN_CELLS (one parser). A
    cell of another project than the stack's (`project`) names its bots' account: the stack passes its
    own bot job's as CLOUDRUN_BOT_SERVICE_ACCOUNT_ID, which the dispatcher would hold that cell's bots to."""
    listed = stack_cells.read(cfg, CELLS_KEY, lambda raw: cloudrun_cells(raw, region), runtime="cloudrun",
                              bot_runtime=bot_runtime, otherwise="Compute Engine bots spread over gceCells")
    for cell in listed:
        if cell.project != project and cell.bot_service_account_id is None:
            raise cfg.fail(CELLS_KEY, (
                f"cell {cell.name} (project {cell.project}) names no bot_service_account_id: its job runs as that "
                f"project's own bots' service account (docs/operations.md, Cells), and without its unique id the "
                f"dispatcher holds the cell's bots to the stack's own, refusing every one. Add "
                f"\"bot_service_account_id\": the digits `gcloud iam service-accounts describe BOTS_EMAIL --project "
                f"{cell.project} --format='value(uniqueId)'` prints"))
    return listed


def listed(setting: str, region: str) -> tuple[CloudRunCell, ...]:
    """The cells of a CLOUDRUN_CELLS value the stack's settings hold (`cells_setting`'s, checked: "" none)."""
    return cloudrun_cells(setting, region) if setting else ()


def cells_listed(text: str, region: str) -> tuple[CloudRunCell, ...] | None:
    """The cells a stack file's `cloudRunCells` lists (none: the stack's own project alone); None: a
    list the dispatcher would refuse (the check names it)."""
    return stack_cells.from_file(text, lambda raw: cloudrun_cells(raw, region))


def cells_setting(listed: tuple[CloudRunCell, ...]) -> str:
    """CLOUDRUN_CELLS for the dispatcher: the cells as JSON, each with the fields it set."""
    return stack_cells.setting(listed)
