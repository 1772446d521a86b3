"""`MACHINES=gce` with `GCE_CELLS`: a deployment's VMs spread over several GCP projects.

Each cell is one project (and zone): a `GceMachines` of that project's instance template, called
with the dispatcher's one service account, granted in each project. Which cell a session's VM goes
to, each cell's insert bucket (`gce:<cell>`, counted once for the deployment; one project's cells in
several zones share its first cell's: the API rate is the project's) and how a project
answering a rate or resource quota is drained: dispatcher/machines/cells.py; the record of a
session's cell in the store before its insert, look-ups and listing over the projects:
dispatcher/machines/cell_launches.py.

An insert carries a `requestId`, so its own retries are one operation, and a VM's name is the
session's, so a retry at any replica meets it (409 `alreadyExists`). A project turns a launch away
(drained, the launch going on to the next) only when its own answer refused the insert and nothing
can have been made: 403 `rateLimitExceeded` or a 429 (a rate quota), `quotaExceeded` or an exhausted
zone (a resource quota), its grant refused (its own 403; a 401 refuses the dispatcher's token, the
same in every project, and drains none), or its instance template missing. A release's template
missing in one project (the stack makes it in GCE_PROJECT only) sends the start on to a project that
has it, draining none; with none, the start fails `ReleaseImageMissing` naming the projects. An insert whose answer
was lost stays in its project, looked for there (machines/lost_creates.py); the dispatcher's own
sign-in failing drains nothing. An insert accepted and failed later for a quota (the operation's
`QUOTA_EXCEEDED`) fails its session and drains the project for the next starts. A bot's instance
identity token must name the project and zone of the cell its VM was found in. With a bot channel
the warm reserve runs over the cells too: gce/cell_reserve.py.
"""

from __future__ import annotations

import logging
import re

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells, CellTurnedAway
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.gce.identity import GceInstanceIdentity
from dispatcher.machines.gce.labels import label_value
from dispatcher.machines.gce.provider import GceMachines, GceRefused
from dispatcher.machines.gce.settings import GceSettings
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.recent import Recent
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.machines.gce")
FAILED_INSERT_DRAIN = 30.0  # an insert failed for a quota: VMs end with their sessions, some every few seconds


class GceCellMachines(CellLaunches[GceMachines]):
    name, label, setting, thing = "gce", "Compute Engine", "GCE_CELLS", "instance"

    def __init__(self, settings: GceSettings, coordination: Coordination, *,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`drain_base`: a throttling cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("GceCellMachines needs GCE_CELLS")
        self.settings = settings
        self._auth = GceAuth(anonymous=settings.anonymous)
        members = {cell.name: self._member(settings.for_cell(cell), coordination, cell.name) for cell in settings.cells}
        # Compute Engine's API rate is the project's: cells in two zones of one project take one bucket's tokens
        first = {cell.project: cell.name for cell in reversed(settings.cells)}
        cells = Cells(self.name, coordination, settings.insert_rate, tuple(members),
                      room={cell.name: cell.max_instances for cell in settings.cells}, drain_base=drain_base,
                      shared={cell.name: first[cell.project] for cell in settings.cells})
        super().__init__(members, cells, coordination, settings.poll_seconds)
        self._where = {name: (member.settings.project, member.settings.zone) for name, member in members.items()}
        self._failed_seen: Recent[str, str] = Recent()  # sessions whose failed insert drained their cell here
        self.identity = GceInstanceIdentity(
            project=settings.project, zone=settings.zone, prefix=settings.prefix,
            audience=settings.identity_audience, certs_url=settings.identity_certs_url, locate=self._located,
            proved=self._vm_proved)

    def _member(self, settings: GceSettings, coordination: Coordination, cell: str) -> GceMachines:
        """One cell's own provider (gce/cell_reserve.py: one that holds reserve VMs too)."""
        return GceMachines(settings, coordination=coordination, auth=self._auth)

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        try:
            return await self._members[cell].insert_session(spec, turn_away=turn_away)
        except GceRefused as exc:
            if (why := _turned_away(exc)) is None:
                raise
            log.warning("Compute Engine cell %s refused a launch: %s", cell, exc.message)
            raise GceTurnedAway(exc.reason, why, sharing=self._refused_with(cell, exc, why),
                                retry_after=exc.retry_after) from None

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        """Only the project's own refusal that made nothing (`run_in`; a reserve VM's insert, refused
        as it is: gce/cell_reserve.py): never a lost answer, nor the dispatcher's own sign-in (the same
        for every project)."""
        if isinstance(exc, GceRefused):
            return _turned_away(exc)
        return exc.message if isinstance(exc, CellTurnedAway) else None

    def drained_with(self, exc: MachinesError, cell: str) -> tuple[str, ...]:
        if isinstance(exc, GceRefused) and (why := _turned_away(exc)) is not None:
            return self._refused_with(cell, exc, why)
        return exc.sharing if isinstance(exc, GceTurnedAway) else (cell,)

    def _refused_with(self, cell: str, exc: GceRefused, why: str) -> tuple[str, ...]:
        """The cells a refusal met in `cell` holds for as well. The API rate is the whole project's, whatever
        zone a cell names (one bucket: `shared` above); a missing template is every cell's that inserts from
        that path (a cell may name its own); another resource missing (a zone) is that cell's; a refused grant
        is that cell's, or its region's when Google names the region (a subnetwork's, say); a quota or an
        exhausted zone: `_capacity_sharing`."""
        if exc.reason == "gce_throttled":
            return self._in_project(cell)
        if exc.reason == "gce_capacity":
            return self._capacity_sharing(cell, why)
        path = self._members[cell].settings.template_path
        if exc.status == 404 and path.rsplit("/", 1)[-1] in exc.api_message:  # not another resource (a zone)
            return tuple(name for name, member in self._members.items() if member.settings.template_path == path)
        if exc.status == 403 and (named := _REGION_NAMED.search(exc.api_message)) is not None:
            return self._in_project(cell, region=named[1])
        return (cell,)

    def _capacity_sharing(self, cell: str, why: str) -> tuple[str, ...]:
        """A zone's exhausted capacity is that zone's alone, a quota (regional: CPUs, addresses) is the
        project's in that region."""
        if "QUOTA" in why.upper() and "EXHAUSTED" not in why.upper():
            return self._in_project(cell, region=_region(self._where[cell][1]))
        return (cell,)

    def _in_project(self, cell: str, *, region: str | None = None) -> tuple[str, ...]:
        project = self._where[cell][0]
        return tuple(name for name, (other, zone) in self._where.items()
                     if other == project and region in (None, _region(zone)))

    def lacks(self, exc: MachinesError) -> bool:
        """A release's template missing in this project (read, or refused by the insert, before
        anything was made): the stack makes release templates in GCE_PROJECT only."""
        return isinstance(exc, ReleaseImageMissing)

    def lacking_everywhere(self, spec: LaunchSpec, cells: list[str], exc: MachinesError | None) -> MachinesError:
        """No project tried has the release's template: name them, and the template to make there."""
        template = self._members[cells[0]].template_of(spec.image).rsplit("/", 1)[-1]
        projects = ", ".join(f"{cell} ({self._members[cell].settings.project})" for cell in cells)
        return ReleaseImageMissing(
            spec.release, "Compute Engine", f"instance template {template} is in none of the cells {projects}",
            remedy=f"make its instance template {template} in each cell's project, as docs/operations.md says "
                   "(Setting up Compute Engine cells)")

    async def status(self, session_id: str) -> Machine | None:
        """The session's VM; an insert its project accepted and then failed for a quota or an
        exhausted zone drains that project, once per session here (it is polled)."""
        found = await self.find(session_id)
        if found is None:
            return None
        cell, machine = found
        code = machine.detail or ""
        if (machine.state is MachineState.FAILED and ("QUOTA" in code or "EXHAUSTED" in code)
                and self._failed_seen.get(session_id) is None):
            self._failed_seen[session_id] = cell
            for drained in self._capacity_sharing(cell, code):
                self.cells.drain(drained, code, FAILED_INSERT_DRAIN)
        return machine

    async def _located(self, grant: BotGrant, session_id: str | None) -> tuple[str, str] | None:
        """The project and zone of the cell a credential's VM was found in (gce/identity.py). A reserve
        bot's hello that names a session is a claimed bot dialling again (a drop, a replica's rollout):
        the claim took its idle label, so its VM is found as the session's (the cell the store records
        for the session, asked at any replica) and must be the bot's own. The admission rules then check
        the session is the one the bot was claimed for (dispatcher/channel/admission.py)."""
        if grant.kind == "idle" and session_id is None:
            cell = await self._idle_cell(grant.subject)
        elif grant.kind == "idle" and session_id is not None:
            cell = await self._claimed_cell(grant, session_id)
        elif grant.kind == "session" and (found := await self.find(grant.subject)) is not None:
            cell = found[0]
        else:
            return None
        if cell is None:
            return None
        settings = self._members[cell].settings
        return settings.project, settings.zone

    async def _claimed_cell(self, grant: BotGrant, session_id: str) -> str | None:
        """The cell of the session's VM when it is the reserve bot's (named for it, labelled with the
        session by the claim). A session id no label can carry names no claimed VM, and is never sent."""
        if not label_value(session_id):
            return None
        found = await self.find(session_id)
        if found is None or found[1].machine_id != self.identity.instance_for(grant):
            return None
        return found[0]

    async def _idle_cell(self, bot_id: str) -> str | None:
        """The cell of reserve bot `bot_id`'s VM: none without a reserve (gce/cell_reserve.py finds it)."""
        return None

    def _vm_proved(self, grant: BotGrant, session_id: str | None, where: tuple[str, str]) -> None:
        """A bot's token proved its VM in `where` (project, zone): nothing to note for cold sessions,
        whose records name their cells (gce/cell_reserve.py notes an idle reserve bot's)."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a cell's bot finds the channel in its template's metadata, as gce's."""


_CAPACITY = "a quota or the zone's capacity"  # a capacity refusal that names neither: the zone's alone
_REGION_NAMED = re.compile(r"/regions/([a-z]+-[a-z]+[0-9]+)/")  # projects/P/regions/europe-west1/subnetworks/S


class GceTurnedAway(CellTurnedAway):
    """A cell's refusal, with the cells it holds for as well (`sharing`: decided from Google's answer, which
    the dispatcher's words in the message leave out)."""

    def __init__(self, reason: str, why: str, *, sharing: tuple[str, ...], retry_after: float | None) -> None:
        super().__init__(reason, why, retry_after=retry_after)
        self.sharing = sharing


def _region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]  # europe-west1-b: europe-west1


def _turned_away(exc: GceRefused) -> str | None:
    """Why the project's refusal of a launch drains it, in the dispatcher's own words (they reach
    callers; Google's, naming projects and accounts, stay in the log). None: not the project's."""
    if exc.reason == "gce_throttled":
        return "rateLimitExceeded"
    if exc.reason == "gce_capacity":
        return exc.api_reason or _CAPACITY
    # 403: this project refused the dispatcher's grant. A 401 is Google refusing the dispatcher's own
    # token, the same in every project: `gce_unauthorized`, the operator's to fix, no project drained.
    if exc.status == 403:
        return "its grant was refused (the dispatcher's log says how)"
    if exc.status == 404:
        return "its instance template was not found (the dispatcher's log says how)"
    return None
