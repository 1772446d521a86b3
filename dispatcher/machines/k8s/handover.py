"""The agent-sandbox warm path's hand-over: the bot of the pod a session's claim adopted, idle on this
replica's channel, is handed that session (`BotChannels.hand_over`: off the idle bots at once, bound,
sent the session's values over the channel). Two watches find it (docs/kubernetes.md, "The warm path"):

- a start here watches its claim until the controller binds it (`status.sandbox.name`), then hands the
  bound pod's bot over if it is idle here; an idle hello checked just before the binding is handed over
  as it registers;
- each idle pool bot held here has its pod watched until a claim's `additionalPodMetadata` names a
  session on it, which is checked against the pod's Sandbox's owner (k8s/pool_bots.py) before the bot
  is handed it: so a claim started at another replica reaches it (the values are in the replicas' store).

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
from dispatcher.machines.k8s.claims import bound_sandbox, claim_machine, claim_name, claimed_session
from dispatcher.machines.k8s.pool_bots import PoolIdentity
from dispatcher.machines.k8s.watch import ObjectWatch
from dispatcher.machines.recent import Recent

log = logging.getLogger("dispatcher.machines.k8s")

# How long a start's claim is watched for its binding: the controller binds at once, or after its ~2 s
# wait for a warm candidate; a refused claim never binds.
HANDOVER_WATCH_SECONDS = 60.0
# How long an idle pool bot's pod is watched: past any idle bot's life (BOT_MAX_IDLE_SECONDS); the watch
# ends with the bot's channel anyway.
IDLE_WATCH_SECONDS = 7 * 86_400.0


class PoolHandover:
    def __init__(self, api: KubeApi, pool: PoolIdentity, *, claims_path: str, pause: float, rbac: str,
                 read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._api, self._pool, self._claims_path = api, pool, claims_path
        self._pause, self._rbac, self._read_pod = pause, rbac, read_pod
        self._channels: BotChannels | None = None
        self._handovers: set[asyncio.Task[None]] = set()
        self._bound: Recent[str, str] = Recent(1000)  # pod → the session its claim, started here, holds it for
        self._idle_watches: dict[str, asyncio.Task[None]] = {}  # pod → the watch of an idle pool bot's pod here

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
        """An idle pool bot whose hello was checked just before its claim bound here: handed now. Any
        other: its pod watched until a claim adopts it, wherever that claim's start was."""
        if (session_id := self._bound.get(link.machine_id)) is not None:
            self._hand_over(link.machine_id, session_id)
        elif link.machine_id not in self._idle_watches:
            task = asyncio.create_task(self._hand_over_when_adopted(link.machine_id),
                                       name=f"k8s-adoption-{link.machine_id}")
            self._idle_watches[link.machine_id] = task
            task.add_done_callback(lambda _: self._idle_watches.pop(link.machine_id, None))

    def _on_close(self, link: BotLink) -> None:
        if link.session_id is None and (task := self._idle_watches.get(link.machine_id)) is not None:
            task.cancel()  # an idle bot gone: nothing to hand over

    async def _hand_over_when_adopted(self, pod: str) -> None:
        """An idle pool bot held here, whose claim's start may be at another replica: its pod watched until
        it carries a session's annotation (the claim's `additionalPodMetadata`), then the session checked
        against the pod's Sandbox's owner (k8s/pool_bots.py) before the bot is handed it."""
        loop = asyncio.get_running_loop()
        watch = ObjectWatch(self._api, self._api.pods_path, pod, _adopted, pause=self._pause, rbac=self._rbac)
        try:
            session_id = await watch.until(None, loop.time() + IDLE_WATCH_SECONDS)
            read = await self._read_pod(pod) if session_id else None
            holder = await self._pool.holder(pod, read) if read is not None else None
        except (MachinesError, TimeoutError) as exc:
            log.info("pool bot %s: its pod's adoption was not seen (%s)", pod, getattr(exc, "message",
                                                                                    type(exc).__name__))
            return
        if holder == ("session", session_id):
            self._hand_over(pod, session_id)
        elif session_id:
            log.warning("pool bot %s: its pod names session %s but its Sandbox is not that claim's (%s); "
                        "not handed", pod, session_id, holder)

    async def aclose(self) -> None:
        tasks = [*self._handovers, *self._idle_watches.values()]
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


def _adopted(event: str, pod: dict[str, Any] | None) -> str | None:
    """A watched idle pool pod's judge: the session a claim's metadata gave it; "" once it is gone."""
    if pod is None or event == "DELETED":
        return ""
    return claimed_session(pod) or None
