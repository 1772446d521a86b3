"""`MACHINES=cloudrun` with `CLOUDRUN_CELLS`: a deployment's executions spread over several GCP projects.

Cloud Run runs at most 1000 executions at once per project and region (machines_apis.md §3.2):
each cell is one project (and region), a `CloudRunMachines` of that project's job, called with the
dispatcher's one service account, granted in each project. Which cell a session's execution goes
to, each cell's `jobs.run` bucket (`cloudrun:<cell>`, counted once for the deployment) and how a
project answering 429 is drained: dispatcher/machines/cells.py; the record of a session's cell in
the store before its run, look-ups and listing over the projects: dispatcher/machines/cell_launches.py.

`jobs.run` has no idempotency key, so in its cell a session's execution is looked for before it is
run (a retry at any replica meets it), and a run turns the launch away to another project only when
every attempt was answered 429 (rate or quota: nothing was made); a run whose answer was lost stays
in its cell, looked for there (machines/lost_creates.py). A bot's identity token must be of the
service account of the project its execution runs in. With a bot channel the warm reserve runs over
the cells too: cloudrun/cell_reserve.py.
"""

from __future__ import annotations

import logging

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway
from dispatcher.machines.cloudrun.identity import CloudRunIdentity, RunningExecution
from dispatcher.machines.cloudrun.provider import CloudRunMachines
from dispatcher.machines.cloudrun.settings import CLOUD_PLATFORM_SCOPE, CloudRunSettings
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.machines.cloudrun")


class CloudRunCellMachines(CellLaunches[CloudRunMachines]):
    name, label, setting, thing = "cloudrun", "Cloud Run", "CLOUDRUN_CELLS", "execution"

    def __init__(self, settings: CloudRunSettings, coordination: Coordination, *,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`drain_base`: a throttling cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("CloudRunCellMachines needs CLOUDRUN_CELLS")
        self.settings = settings
        self._auth = GceAuth(anonymous=settings.anonymous, scope=CLOUD_PLATFORM_SCOPE, provider=self.name)
        members = {cell.name: self._member(settings.for_cell(cell), coordination, cell.name) for cell in settings.cells}
        cells = Cells(self.name, coordination, settings.run_rate, tuple(members),
                      room={cell.name: cell.max_executions for cell in settings.cells}, drain_base=drain_base)
        super().__init__(members, cells, coordination, settings.poll_seconds)
        self.identity = CloudRunIdentity(
            audience=settings.identity_audience, certs_url=settings.identity_certs_url, running=self._serves,
            accounts=tuple(m.settings.bot_service_account_id for m in members.values()), proved=self._proved)

    def _member(self, settings: CloudRunSettings, coordination: Coordination, cell: str) -> CloudRunMachines:
        """One cell's own provider (cloudrun/cell_reserve.py: one that holds reserve executions too)."""
        return CloudRunMachines(settings, coordination=coordination, auth=self._auth)

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        member = self._members[cell]
        try:  # a retry (at any replica) meets the execution an earlier run made here
            existing = await member.existing(spec.session_id)
        except MachinesError as exc:
            if exc.nothing_sent:  # the dispatcher's own sign-in failed: no cell was asked, none is to blame
                raise
            if turn_away and _why_drained(exc) is not None:
                raise  # no launch of the session was sent anywhere yet: the project is drained, the start moves on
            raise self.unknown(spec.session_id, f"Cloud Run cell {cell}", exc) from None  # never run a second
        return existing or await member.run_session(spec, turn_away=turn_away)

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        """Why the cell is drained (`_why_drained`), Google's words for the operator's to fix logged once."""
        why = _why_drained(exc)
        if why is not None and not isinstance(exc, CellTurnedAway) and exc.reason in _OPERATORS_TO_FIX:
            log.warning("Cloud Run cell %s drained: %s", cell, exc.message)
        return why

    async def _serves(self, kind: str, subject: str, session_id: str | None = None) -> RunningExecution | None:
        """The running execution of a credential's session, read in its own cell, with that cell's
        bots' account (cloudrun/identity.py); a reserve bot's: `_idle_running`."""
        if kind == "idle":
            return await self._idle_running(subject, session_id)
        if kind != "session" or (found := await self.find(subject)) is None:
            return None
        member = self._members[found[0]]
        return member.read_here(await member.running_execution(subject), found[0])

    async def _idle_running(self, bot_id: str, session_id: str | None) -> RunningExecution | None:
        """Reserve bot `bot_id`'s running execution: none without a reserve (cloudrun/cell_reserve.py)."""
        return None

    def _proved(self, grant: BotGrant, session_id: str | None, found: RunningExecution) -> None:
        """A bot's token and nonce proved its execution in `found.cell`: only an idle reserve bot's cell is
        noted (`_idle_proved`); a claimed one dialling again (its hello names its session) is the session's."""
        if grant.kind == "idle" and session_id is None and found.cell is not None:
            self._idle_proved(grant.subject, found.cell)

    def _idle_proved(self, bot_id: str, cell: str) -> None:
        """Nothing to note without a reserve (cloudrun/cell_reserve.py fixes the bot's cell)."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a Cloud Run bot finds the channel in its job's env, as cloudrun's."""


_OPERATORS_TO_FIX = ("cloudrun_job_missing", "cloudrun_unauthorized")


def _why_drained(exc: MachinesError) -> str | None:
    """Throttling or the quota (nothing was made), said by its code alone; a grant refused or the
    job missing (the operator's to fix; Google's words, naming projects and accounts, stay in the log)."""
    if isinstance(exc, CellTurnedAway):
        return exc.message
    if exc.reason == "cloudrun_throttled":  # the last open cell, still throttling after its retries
        return "RESOURCE_EXHAUSTED"
    if exc.reason == "cloudrun_capacity":
        return "the project's quota of running executions"
    if exc.reason == "cloudrun_job_missing":  # read before any run: nothing was sent there
        return "its job is missing (the dispatcher's log names it)"
    # A refusal in the cell's own answer only: the dispatcher's own sign-in refused (nothing sent)
    # is every cell's alike, and the operator's to fix at the dispatcher, not a cell to avoid.
    if exc.reason == "cloudrun_unauthorized" and not exc.nothing_sent and not isinstance(exc, ReleaseImageMissing):
        return "its grant was refused (the dispatcher's log says how)"
    return None
