"""A bot's hello over K8S_CELLS: its token reviewed by the cluster of its session's recorded cell, no other.

A session's pod runs in the cell the store records for it (`home:k8s-cell:<session>`, written before its
create: dispatcher/machines/cell_launches.py), so its bot's projected token is that cluster's, and only
that cluster's API server can review it (k8s/identity.py, k8s/session_pods.py): the hello is sent there
alone. Asking every cluster would hand each one a token of another and let a cluster whose namespace
an outsider runs pods in admit a look-alike `vf-<session id>` pod. A session with no record, a record
naming a cell no longer listed, or a store that does not answer: the hello is refused, saying why (the
bot dials again). The session is read from the hello's machine, the pod's name (`vf-<session id>`),
which the token must name (k8s/hello_precheck.py).

An idle reserve bot's token is reviewed by the one cell its pod is in, never one the token or its hello
names: the cell it was created in here, else the one cluster whose pod of its name is labelled idle with
its bot id (`bot_cell`, k8s/cell_reserve.py; two such cells: refused). Admitted, that proves its cell
(`proved`), unless that cell is closed (`max_pods: 0`): no session may claim it there, and the sweep
retires its pod. A claimed reserve bot dialling again names its session: its pod is looked for as that
session's, in the session's recorded cell, and must be the bot's (k8s/cells.py `_bot_cell`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import IdentityOnly, MachineIdentity, ProofSeen
from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.pods import IDLE_PREFIX, NAME_PREFIX, idle_pod_name
from dispatcher.store.unavailable import StoreUnavailable

Recorded = Callable[[str], Awaitable[str | None]]  # a session id → its recorded cell (StoreUnavailable: no answer)
# A reserve bot's id and the session its hello names (a claimed bot's re-dial) → its pod's cell; None: none
# (MachinesError: a cell did not answer).
BotCell = Callable[[str, str | None], Awaitable[str | None]]
Proved = Callable[[str, str], None]  # an idle reserve bot's hello admitted in that cell


async def cell_of(recorded: Recorded, session_id: str, cells: Mapping[str, object]) -> str:
    """The session's recorded cell, or raises `LookupError` saying why there is none to ask."""
    try:
        cell = await recorded(session_id)
    except StoreUnavailable:
        raise LookupError(f"the store did not answer, so session {session_id}'s cell is not known") from None
    if cell is None:
        raise LookupError(f"session {session_id} has no recorded cell (no pod was launched for it)")
    if cell not in cells:
        raise LookupError(f"session {session_id}'s cell {cell} is no longer in K8S_CELLS")
    return cell


class CellPodIdentity:
    """`MachineIdentity` over cells: a session's grant checked by its recorded cell's own identity."""

    def __init__(self, recorded: Recorded, identities: Mapping[str, MachineIdentity], *, bot_cell: BotCell,
                 proved: Proved, closed: Callable[[str], bool] = lambda cell: False) -> None:
        """`closed`: whether a cell takes no new session (`max_pods: 0`), so its idle bots are refused."""
        self._recorded, self._identities = recorded, dict(identities)
        self._bot_cell, self._proved, self._closed = bot_cell, proved, closed

    async def refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        if grant.kind == "idle":
            return await self._idle_refusal(grant, hello)
        if grant.kind != "session":
            return f"{grant.kind} bot {grant.subject}: no such bot runs over K8S_CELLS"
        try:
            cell = await cell_of(self._recorded, grant.subject, self._identities)
        except LookupError as exc:
            return str(exc)
        return await self._identities[cell].refusal(grant, hello)

    async def _idle_refusal(self, grant: BotGrant, hello: Hello) -> str | None:
        """A reserve bot's token reviewed by its pod's own cell alone (the module says which)."""
        pod = idle_pod_name(grant.subject)
        try:
            cell = await self._bot_cell(grant.subject, hello.session_id)
        except MachinesError as exc:
            return f"a Kubernetes cell did not answer a look for idle pod {pod} ({exc.reason})"
        if cell is None or cell not in self._identities:
            if hello.session_id is not None:
                return f"session {hello.session_id[:80]!r} has no pod {pod} in its recorded cell"
            return f"no Kubernetes cell alone holds an idle pod {pod} of bot {grant.subject}"
        if hello.session_id is None and self._closed(cell):
            return f"idle pod {pod}'s cell {cell} is closed (max_pods 0): it takes no session, and is being retired"
        refused = await self._identities[cell].refusal(grant, hello)
        if refused is None and hello.session_id is None:  # a claimed bot's re-dial is the session's now
            self._proved(grant.subject, cell)
        return refused

    def proof_seen(self, hello: Hello) -> ProofSeen | None:
        return None  # a pod's token is the same for every dial until the kubelet refreshes it

    async def aclose(self) -> None:
        """Nothing of its own: each cell's identity goes through its provider's client."""


class CellSessionPods:
    """`IdentityOnly` over cells: a session pod's hello granted by its recorded cell's own pool only."""

    def __init__(self, recorded: Recorded, pools: Mapping[str, IdentityOnly]) -> None:
        self._recorded, self._pools = recorded, dict(pools)

    async def grant(self, hello: Hello) -> BotGrant | str:
        name = str(hello.machine_id or "")
        if not name.startswith(NAME_PREFIX) or name.startswith(IDLE_PREFIX) or name == NAME_PREFIX:
            return f"{name[:80]!r} is no session's pod (its hello names its pod, vf-<session id>)"
        try:
            cell = await cell_of(self._recorded, name.removeprefix(NAME_PREFIX), self._pools)
        except LookupError as exc:
            return str(exc)
        return await self._pools[cell].grant(hello)
