"""The agent-sandbox warm path's hand-over: the bot of the pod a session's claim adopted, idle on this
replica's channel, is handed that session (`BotChannels.hand_over`: off the idle bots at once, bound,
sent the session's values over the channel). Two watches find it (docs/kubernetes.md, "The warm path"):

- a start here watches its claim until the controller binds it (`status.sandbox.name`), then hands the
  bound pod's bot over if it is idle here; an idle hello checked just before the binding is handed over
  as it registers;
- a replica holding idle pool bots watches the namespace's SandboxClaims, voicefleet's (one watch,
  label-selected, resumed from its last version, listed again on 410 Gone: k8s/watch.py), whatever
  number of bots it holds; a claim bound to the pod of an idle bot held here, and not being deleted,
  is checked against the pod's Sandbox's owner (k8s/pool_bots.py) before the bot is handed its
  session: so a claim started at another replica reaches it (the values are in the replicas' store).
  A watch per idle bot would hold one of the API client's connections each, and a hundred idle bots
  would stall every other call.

A bot not dialled yet needs neither: its hello is admitted as its claim's session's (k8s/pool_bots.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.claims import bound_sandbox, claim_machine, claim_name
from dispatcher.machines.k8s.pods import APP, LABEL_APP
from dispatcher.machines.k8s.pool_bots import PoolIdentity
from dispatcher.machines.k8s.watch import ObjectWatch
from dispatcher.machines.recent import Recent

log = logging.getLogger("dispatcher.machines.k8s")

# How long a start's claim is watched for its binding: the controller binds at once, or after its ~2 s
# wait for a warm candidate; a refused claim never binds.
HANDOVER_WATCH_SECONDS = 60.0
# One `until` of the replica's claims watch, past any idle bot's life; it is then opened again.
CLAIMS_WATCH_SECONDS = 7 * 86_400.0
VOICEFLEETS_CLAIMS = f"{LABEL_APP}={APP}"  # the claims' own label (k8s/claims.py)


class PoolHandover:
    def __init__(self, api: KubeApi, pool: PoolIdentity, *, claims_path: str, pause: float, rbac: str,
                 read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._api, self._pool, self._claims_path = api, pool, claims_path
        self._pause, self._rbac, self._read_pod = pause, rbac, read_pod
        self._channels: BotChannels | None = None
        self._handovers: set[asyncio.Task[None]] = set()
        self._bound: Recent[str, str] = Recent(1000)  # pod → the session its claim, started here, holds it for
        self._adopted: Recent[str, str] = Recent(1000)  # pod → the session a bound claim, seen by the watch, names
        self._claims_watch: asyncio.Task[None] | None = None  # this replica's one watch of the claims
        self._checking: set[str] = set()  # pods whose claim's grant is being checked before a hand-over

    def watch_channels(self, channels: BotChannels) -> None:
        self._channels = channels
        channels.idle_listeners.append(self._on_idle_hello)
        channels.close_listeners.append(self._on_close)

    def follow(self, session_id: str, claim: dict[str, Any]) -> None:
        """Watch the start's claim until it is bound, in the background (the start answers meanwhile)."""
        if self._channels is None or not self._channels.enabled:
            return
        version = str((claim.get("metadata") or {}).get("resourceVersion", ""))
        task = asyncio.create_task(self._hand_over_when_bound(session_id, claim, version),
                                   name=f"k8s-handover-{session_id}")
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)

    async def _hand_over_when_bound(self, session_id: str, claim: dict[str, Any], version: str) -> None:
        """The claim's pod, once bound: its bot, idle on this replica's channel, is handed the session
        (a warm adoption). Not here yet, its hello will be admitted as the session's (k8s/pool_bots.py)."""
        name = claim_name(session_id)
        try:
            pod = bound_sandbox(claim)
            if pod is None:
                loop = asyncio.get_running_loop()
                watch = ObjectWatch(self._api, self._claims_path, name, _binding(name), pause=self._pause,
                                    rbac=self._rbac)
                pod = await watch.until(version or None, loop.time() + HANDOVER_WATCH_SECONDS)
        except (MachinesError, TimeoutError) as exc:
            log.info("session %s: its claim was not seen bound (%s); a pool bot is not handed it here", session_id,
                     getattr(exc, "message", type(exc).__name__))
            return
        if not pod:  # gone, or ended, before it was bound
            return
        self._bound[pod] = session_id
        self._hand_over(pod, session_id)

    def _hand_over(self, pod: str, session_id: str) -> None:
        if self._channels is not None and self._channels.hand_over(pod, session_id) is not None:
            log.info("session %s: warm pool bot %s handed its session", session_id, pod)

    def _on_idle_hello(self, link: BotLink) -> None:
        """An idle pool bot whose hello was checked just before its claim bound: handed now. Any other:
        the replica's claims watch runs (started by the first), and finds the claim that adopts it."""
        pod = link.machine_id
        if (session_id := self._bound.get(pod)) is not None:
            self._hand_over(pod, session_id)
            return
        if (session_id := self._adopted.get(pod)) is not None:
            self._check_then_hand_over(pod, session_id)
        if self._claims_watch is None or self._claims_watch.done():
            self._claims_watch = asyncio.create_task(self._watch_claims(), name="k8s-pool-claims")

    def _on_close(self, link: BotLink) -> None:
        if self._channels is not None and not self._channels.idle() and self._claims_watch is not None:
            self._claims_watch.cancel()  # no idle bot here: nothing to hand over until one dials

    async def _watch_claims(self) -> None:
        """Voicefleet's claims, watched while this replica holds idle pool bots (`_on_claim`)."""
        loop = asyncio.get_running_loop()
        while True:
            watch: ObjectWatch[None] = ObjectWatch(self._api, self._claims_path, "voicefleet's sandboxclaims",
                                                   self._on_claim, pause=self._pause, rbac=self._rbac,
                                                   labels=VOICEFLEETS_CLAIMS)
            try:
                await watch.until(None, loop.time() + CLAIMS_WATCH_SECONDS)
            except TimeoutError:
                continue
            except MachinesError as exc:  # a configuration error: tried again at the next idle hello
                log.warning("the pool's claims are not watched (%s); a start at another replica does not reach "
                            "the idle pool bots here", exc.message)
                return

    def _on_claim(self, event: str, claim: dict[str, Any] | None) -> None:
        """A claim bound to the pod of an idle bot held here, not being deleted: its grant checked, then
        the bot handed its session. Never an answer: the watch runs on."""
        if claim is None or event == "DELETED" or (claim.get("metadata") or {}).get("deletionTimestamp"):
            return None
        pod, session_id = bound_sandbox(claim), claim_machine(claim).session_id
        if not pod or not session_id:
            return None
        self._adopted[pod] = session_id  # its bot's hello may register here a moment later
        if self._channels is not None and any(link.machine_id == pod for link in self._channels.idle()):
            self._check_then_hand_over(pod, session_id)
        return None

    def _check_then_hand_over(self, pod: str, session_id: str) -> None:
        if pod in self._checking:
            return
        self._checking.add(pod)
        task = asyncio.create_task(self._hand_over_if_held(pod, session_id), name=f"k8s-adoption-{pod}")
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)
        task.add_done_callback(lambda _: self._checking.discard(pod))

    async def _hand_over_if_held(self, pod: str, session_id: str) -> None:
        """The pod's Sandbox's owner must be the session's claim (k8s/pool_bots.py) before its bot is
        handed the session: a claim's status alone is not the grant."""
        try:
            read = await self._read_pod(pod)
            holder = await self._pool.holder(pod, read) if read is not None else None
        except MachinesError as exc:
            log.info("pool bot %s: its adoption could not be checked (%s)", pod, exc.message)
            return
        if holder == ("session", session_id):
            self._hand_over(pod, session_id)
        else:
            log.warning("pool bot %s: a claim names it for session %s but its Sandbox is not that claim's (%s); "
                        "not handed", pod, session_id, holder)

    async def aclose(self) -> None:
        tasks = [*self._handovers, *([self._claims_watch] if self._claims_watch is not None else [])]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)


def _binding(name: str) -> Callable[[str, dict[str, Any] | None], str | None]:
    """A watched claim's judge for the hand-over: its pod once bound; "" once it is gone or ended unbound."""

    def judge(event: str, claim: dict[str, Any] | None) -> str | None:
        if claim is None or event == "DELETED":
            return ""
        if (pod := bound_sandbox(claim)) is not None:
            return pod
        return "" if claim_machine(claim).state is not MachineState.STARTING else None

    return judge

