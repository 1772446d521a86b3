"""`MACHINES=k8s` with `K8S_CELLS`: a deployment's bot pods spread over several Kubernetes clusters.

Each cell is one cluster's namespace: a `K8sMachines` (`pods` mode) of its own API server, signed in
with that cell's own token file and trusting its own CA. Which cell a session's pod goes to, each
cell's create bucket (`k8s:<cell>`, counted once for the deployment) and its drain:
dispatcher/machines/cells.py; the record of a session's cell in the store before its create
(`home:k8s-cell:<session>`), look-ups, stops and the listing over the clusters:
dispatcher/machines/cell_launches.py. A pod is named for its session, so a retry at any replica meets it
(409 AlreadyExists) in the cell its record names.

A cluster turns a launch away (drained, the launch going on to the next) only when nothing can have
been made there: its API server could not be connected to at all (refused, a name that does not
resolve, a TLS handshake that failed, no connection within the connect timeout: nothing was sent), or
its own answer to the first try refused the create: a 429 (the API server's priority and fairness), a
ResourceQuota's 403 `exceeded quota`, or its refusal of the cell's own token or RBAC (a 401 or 403;
each cell signs in with its own). An admission policy's 403 refuses the pod itself, the same in every
cluster: no cell is drained. A first try sent but unanswered (a timeout, a reset) or a 5xx may have made the pod:
the create is retried in that cell only (a pod's name makes it safe), and a refusal that follows, or a
retry the dispatcher cannot send for want of its own descriptors, is no proof that nothing was made: the
pod is looked for there, and the start never sent on to another cell. A bot's identity token is
reviewed by its session's recorded cell alone, a reserve bot's by its idle pod's (k8s/cell_identity.py).
With a bot channel the warm reserve runs over the cells too: k8s/cell_reserve.py.
"""

from __future__ import annotations

import logging
import re

from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import IdentityOnly
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError
from dispatcher.machines.cell_launches import CellLaunches
from dispatcher.machines.cells import DRAIN_BASE_SECONDS, Cells
from dispatcher.machines.k8s.cell_identity import CellPodIdentity, CellSessionPods
from dispatcher.machines.k8s.pods import idle_pod_name
from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.outbound.retry import EXHAUSTED
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.machines.k8s")
SESSION_ID = re.compile(r"[0-9a-f]{24}")  # a session id as the dispatcher makes it: its pod is named for it
# The API server has no published create rate (priority and fairness answers 429 when it is busy): each
# cell's bucket paces one deployment's creates well under what a cluster's API server takes.
CREATE_RATE = Rate(per_second=20.0, burst=40, max_wait=2.0)
QUOTA = "its namespace's ResourceQuota is exceeded"
THROTTLED = "its API server answered 429 (throttled)"
REFUSED = "its token or RBAC was refused (the dispatcher's log says how)"
UNREACHABLE = "its API server could not be connected to (the dispatcher's log says why)"


class K8sCellMachines(CellLaunches[K8sMachines]):
    name, label, setting, thing = "k8s", "Kubernetes", "K8S_CELLS", "pod"
    issues_credentials = False  # as one cluster's: a session's pod holds no credential (k8s/session_pods.py)

    def __init__(self, settings: K8sSettings, coordination: Coordination, *, channel_url: str | None = None,
                 drain_base: float = DRAIN_BASE_SECONDS) -> None:
        """`drain_base`: a throttling cell's first backoff (dispatcher/machines/cells.py)."""
        if not settings.cells:
            raise ValueError("K8sCellMachines needs K8S_CELLS")
        self.settings = settings
        self.bot_image = settings.image
        members = {cell.name: self._member(settings.for_cell(cell), cell.name, channel_url) for cell in settings.cells}
        cells = Cells(self.name, coordination, CREATE_RATE, tuple(members), drain_base=drain_base,
                      room={cell.name: cell.max_pods for cell in settings.cells})
        super().__init__(members, cells, coordination, settings.poll_seconds)
        self.identity = CellPodIdentity(self._recorded_cell, {name: m.identity for name, m in members.items()},
                                        bot_cell=self._bot_cell, proved=self._idle_proved, closed=cells.closed)

    def _member(self, settings: K8sSettings, cell: str, channel_url: str | None) -> K8sMachines:
        """One cell's own provider (k8s/cell_reserve.py: one that holds idle pods too)."""
        return K8sMachines(settings, channel_url=channel_url)

    async def _recorded_cell(self, session_id: str) -> str | None:
        return await self._holders.held(self._holder_key + session_id)

    async def _bot_cell(self, bot_id: str, session_id: str | None) -> str | None:
        """The cell of a reserve bot's pod. Idle: the one the reserve knows (`_idle_cell`). Claimed (its hello
        names its session): the session's recorded cell, where the session's pod must be the bot's; a session
        id not of the dispatcher's form names no pod and is never sent to an API server."""
        if session_id is None:
            return await self._idle_cell(bot_id)
        if SESSION_ID.fullmatch(session_id) is None:
            return None
        found = await self.find(session_id)
        return found[0] if found is not None and found[1].machine_id == idle_pod_name(bot_id) else None

    async def _idle_cell(self, bot_id: str) -> str | None:
        """The cell of reserve bot `bot_id`'s idle pod: none without a reserve (k8s/cell_reserve.py finds it)."""
        return None

    def _idle_proved(self, bot_id: str, cell: str) -> None:
        """Nothing to note without a reserve (k8s/cell_reserve.py fixes the bot's cell)."""

    async def run_in(self, cell: str, spec: LaunchSpec, *, turn_away: bool) -> LaunchResult:
        member = self._members[cell]
        if not turn_away:
            return await member.create_session(spec)
        try:
            return await member.create_session(spec, once=True)
        except MachinesError as exc:
            if exc.reason != "k8s_unavailable" or exc.nothing_sent:
                if self.drain_reason(exc, cell) is not None:
                    log.warning("Kubernetes cell %s turned a launch away: %s", cell, exc.message)
                raise
        try:  # sent but unanswered, or a 5xx: the pod may exist there, so only there is it created (or met)
            return await member.create_session(spec)
        except MachinesError as exc:
            # A refusal, or a retry the dispatcher could not send (its own descriptors spent), proves nothing of
            # the first try: its pod is looked for (machines/lost_creates.py), never taken for not made.
            if self.drain_reason(exc, cell) is None and exc.reason != EXHAUSTED:
                raise
            raise MachinesError("k8s_unavailable", f"k8s: the create in cell {cell} went unanswered, then its retry "
                                f"failed ({exc.reason}): the pod may have been made", retry_after=1.0) from None

    def drain_reason(self, exc: MachinesError, cell: str) -> str | None:
        """Only a create that made nothing (`run_in`): the cluster's own refusal, or its API server never
        connected to, in the dispatcher's words (they reach callers on `/status` and in a 503's message;
        the API server's, and the connection's cause, stay in the log)."""
        if exc.reason == "k8s_unavailable" and exc.nothing_sent:
            return UNREACHABLE
        return {"k8s_throttled": THROTTLED, "k8s_capacity": QUOTA, "k8s_unauthorized": REFUSED}.get(exc.reason)

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        """Watched in the session's cell, as one cluster's pod is (k8s/watch.py), not polled."""
        found = await self.find(session_id)
        if found is None:
            raise MachinesError("not_found", f"session {session_id} has no pod")
        return await self._members[found[0]].wait_started(session_id, timeout)

    def watch_channels(self, channels: BotChannels) -> None:
        """Each cell's pods hold no secret, their bots dialling with their pods' identity alone: each cell's
        own check (k8s/provider.py), asked only for a session recorded there (k8s/cell_identity.py)."""
        pools: dict[str, IdentityOnly] = {}
        for name, member in self._members.items():
            member.watch_channels(channels)  # sets its own check as the channels': gathered, then routed
            if channels.identity_only is not None:
                pools[name] = channels.identity_only
        if pools:
            channels.identity_only = CellSessionPods(self._recorded_cell, pools)

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: each pod is sent the channel's URL (BOT_CHANNEL_URL), as one cluster's is."""
