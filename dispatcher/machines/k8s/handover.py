"""The agent-sandbox warm path's hand-over: the bot of the pod a session's claim adopted, idle on this
replica's channel, is handed that session (`BotChannels.hand_over`: off the idle bots at once, bound,
sent the session's values over the channel). One watch finds it (docs/kubernetes.md, "The warm path"):
the replica's watch of the namespace's SandboxClaims, voicefleet's (label-selected, resumed from its
last version, listed again on 410 Gone: k8s/watch.py), open while this replica holds idle pool bots or
has starts waiting for their claim's binding, whatever their number. A claim bound to the pod of an
idle bot held here, and not being deleted, is checked against the pod's Sandbox's owner
(k8s/pool_bots.py) before the bot is handed its session, whichever replica started it (the values are
in the replicas' store); a claim's status alone is not the grant. A start here does not watch its own
claim: a watch per start (or per idle bot) would hold one of the provider's API connections each, and a
hundred claims the controller does not bind would stall every other call. It waits, in memory and keyed
by its claim's name, on the replica's watch.

An owner check that fails (the API server's bad moment) is tried again after a bounded, jittered pause
while the claim is still seen bound to the pod and its bot is still idle here; a claim event for a pod
being checked makes it checked again once the check in flight ends. What the watch saw is kept by claim
uid, so a second claim naming the same pod does not hide the first; a start's create answer, older
than a binding the watch saw (handled late on a busy replica), never undoes it.

The watch is not given up while it is wanted: a failed list or watch is tried again after a bounded,
jittered pause; a refused credential (401, 403) is logged once and tried again slowly.

A bot not dialled yet needs none of this: its hello is admitted as its claim's session's (k8s/pool_bots.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.claims import bound_sandbox, claim_machine, claim_name
from dispatcher.machines.k8s.pods import APP, LABEL_APP
from dispatcher.machines.k8s.pool_bots import PoolIdentity
from dispatcher.machines.k8s.watch import LISTED, ObjectWatch
from dispatcher.recent import Recent

log = logging.getLogger("dispatcher.machines.k8s")

# How long a start here keeps the replica's watch open for its claim's binding: the controller binds at
# once, or after its ~2 s wait for a warm candidate; a refused claim never binds.
HANDOVER_WAIT_SECONDS = 60.0
# One `until` of the replica's claims watch, past any idle bot's life; it is then opened again.
CLAIMS_WATCH_SECONDS = 7 * 86_400.0
# The longest pause before the claims are listed again after a failure (jittered: replicas spread out).
RELIST_CAP_SECONDS = 60.0
# The pause after a refused credential or RBAC (401, 403): the operator must act; no need to hammer.
REFUSED_PAUSE_SECONDS = 300.0
# An owner check that failed is tried again this many times in all, its pauses jittered, capped at this.
CHECK_ATTEMPTS = 6
CHECK_RETRY_CAP_SECONDS = 10.0
VOICEFLEETS_CLAIMS = f"{LABEL_APP}={APP}"  # the claims' own label (k8s/claims.py)


class PoolHandover:
    def __init__(self, api: KubeApi, pool: PoolIdentity, *, claims_path: str, pause: float, rbac: str,
                 read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._api, self._pool, self._claims_path = api, pool, claims_path
        self._pause, self._rbac, self._read_pod = pause, rbac, read_pod
        self._channels: BotChannels | None = None
        self._handovers: set[asyncio.Task[None]] = set()
        # claim uid → (pod, session) of a bound claim the watch saw: its bot's hello may register a moment later
        self._adopted: Recent[str, tuple[str, str]] = Recent(1000)
        self._waiting: dict[str, asyncio.TimerHandle] = {}  # claim → its wait's end: starts here not bound yet
        self._claims_watch: asyncio.Task[None] | None = None  # this replica's one watch of the claims
        self._checking: dict[str, bool] = {}  # claim uid being checked → whether to check it again after

    def watch_channels(self, channels: BotChannels) -> None:
        self._channels = channels
        channels.idle_listeners.append(self._on_idle_hello)
        channels.close_listeners.append(self._on_close)

    def follow(self, session_id: str, claim: dict[str, Any]) -> None:
        """A start's claim, as its create or replay answered it: judged now, and, not bound yet, waited
        for on the replica's watch (the start answers meanwhile)."""
        if self._channels is None or not self._channels.enabled:
            return
        metadata = claim.get("metadata") or {}
        if str(metadata.get("uid") or metadata.get("name", "")) in self._adopted:
            # The watch saw it bound already: this answer is older, its handling merely late (a busy
            # replica reads the watch's events before the create's answer), and must not undo that.
            return
        self._on_claim(LISTED, claim)
        name = claim_name(session_id)
        if bound_sandbox(claim) is None and claim_machine(claim).state is MachineState.STARTING:
            self._stop_waiting(name)
            self._waiting[name] = asyncio.get_running_loop().call_later(HANDOVER_WAIT_SECONDS, self._gave_up, name)
            self._keep_watching()

    def _gave_up(self, name: str) -> None:
        log.info("sandboxclaim %s was not seen bound within %gs; a pool bot is not handed it here", name,
                 HANDOVER_WAIT_SECONDS)
        self._stop_waiting(name)

    def _stop_waiting(self, name: str) -> None:
        if (timer := self._waiting.pop(name, None)) is not None:
            timer.cancel()
            self._stop_watching_if_unwanted()

    async def _hand_over_if_linked_here(self, pod: str, session_id: str, pod_uid: str) -> None:
        """Handed only while this replica holds the pod's one channel across the replicas, renewed now
        (dispatcher/channel/link_hold.py): a copy of its token idle elsewhere never is; and only to a link
        admitted for the pod as read (`pod_uid`): a link admitted for an earlier pod of the name (deleted,
        its Sandbox's pod made again) is not the adopted pod's bot, whose token it never presented."""
        link = self._idle_link(pod)
        if self._channels is None or link is None or link.key_digest is None:
            return
        if not await self._channels.link_hold.confirmed(link.hold_id, link.key_digest):
            log.warning("pool bot %s: this replica does not hold its channel now; not handed session %s here",
                        pod, session_id)
            return
        # The link confirmed, still idle here (no await from here to the take), and of the pod as read.
        if self._idle_link(pod) is not link or link.machine_uid != pod_uid:
            log.warning("pool bot %s: its link here was admitted for an earlier pod of that name; not handed session "
                        "%s", pod, session_id)
            return
        if self._channels.hand_over(pod, session_id) is not None:
            log.info("session %s: warm pool bot %s handed its session", session_id, pod)

    def _on_idle_hello(self, link: BotLink) -> None:
        """An idle pool bot whose claim's binding the watch saw just before its hello registered: checked,
        then handed over. Any other: the replica's watch runs, and finds the claim that adopts it."""
        for uid, (pod, session_id) in list(self._adopted.items()):
            if pod == link.machine_id:
                self._check_then_hand_over(uid, pod, session_id)
        self._keep_watching()

    def _on_close(self, link: BotLink) -> None:
        self._stop_watching_if_unwanted()

    def _keep_watching(self) -> None:
        if self._claims_watch is None or self._claims_watch.done():
            self._claims_watch = asyncio.create_task(self._watch_claims(), name="k8s-pool-claims")

    def _stop_watching_if_unwanted(self) -> None:
        """No idle bot here and no start waiting: nothing to hand over until one dials or starts."""
        idle = self._channels is not None and bool(self._channels.idle())
        if not idle and not self._waiting and self._claims_watch is not None:
            # Forgotten at once: it ends at its next await, and a hello or start before then opens a new one.
            self._claims_watch.cancel()
            self._handovers.add(self._claims_watch)
            self._claims_watch.add_done_callback(self._handovers.discard)
            self._claims_watch = None

    async def _watch_claims(self) -> None:
        """Voicefleet's claims, watched while wanted (`_on_claim`); listed again after any failure."""
        loop = asyncio.get_running_loop()
        failures, refused_told = 0, False
        while True:
            watch: ObjectWatch[None] = ObjectWatch(self._api, self._claims_path, "voicefleet's sandboxclaims",
                                                   self._on_claim, pause=self._pause, rbac=self._rbac,
                                                   labels=VOICEFLEETS_CLAIMS)
            began = loop.time()
            try:
                await watch.until(None, began + CLAIMS_WATCH_SECONDS)
            except TimeoutError:
                failures = 0
                continue
            except MachinesError as exc:
                failures = 1 if loop.time() - began > RELIST_CAP_SECONDS else failures + 1
                if exc.reason.endswith("_unauthorized"):
                    if not refused_told:
                        log.error("the pool's claims cannot be watched (%s); idle pool bots here are not handed "
                                  "sessions until that is fixed; trying again every %gs", exc.message,
                                  REFUSED_PAUSE_SECONDS)
                        refused_told = True
                    await asyncio.sleep(REFUSED_PAUSE_SECONDS)
                    continue
                refused_told = False
                pause = random.uniform(0.5, 1.0) * min(RELIST_CAP_SECONDS, self._pause * 2 ** failures)  # noqa: S311
                log.warning("the pool's claims watch failed (%s); listing them again in %.1fs", exc.message, pause)
                await asyncio.sleep(pause)

    def _on_claim(self, event: str, claim: dict[str, Any] | None) -> None:
        """A claim bound to the pod of an idle bot held here, not being deleted: its grant checked, then
        the bot handed its session. A start waiting here stops at its claim's binding or end. Never an
        answer: the watch runs on."""
        if claim is None:
            return None
        metadata = claim.get("metadata") or {}
        name = str(metadata.get("name", ""))
        uid = str(metadata.get("uid") or name)
        if event == "DELETED" or metadata.get("deletionTimestamp"):
            self._adopted.pop(uid, None)
            self._stop_waiting(name)
            return None
        pod, machine = bound_sandbox(claim), claim_machine(claim)
        if not pod or not machine.session_id:
            self._adopted.pop(uid, None)
            if machine.state is not MachineState.STARTING:
                self._stop_waiting(name)  # ended unbound
            return None
        self._adopted[uid] = (pod, machine.session_id)
        if self._idle_here(pod):
            self._check_then_hand_over(uid, pod, machine.session_id)
        self._stop_waiting(name)
        return None

    def _idle_link(self, pod: str) -> BotLink | None:
        """The pod's bot's link, idle on this replica's channel, or None."""
        if self._channels is None:
            return None
        return next((link for link in self._channels.idle() if link.machine_id == pod), None)

    def _idle_here(self, pod: str) -> bool:
        return self._idle_link(pod) is not None

    def _check_then_hand_over(self, uid: str, pod: str, session_id: str) -> None:
        if uid in self._checking:
            self._checking[uid] = True  # seen again while checked: checked again once this check ends
            return
        self._checking[uid] = False
        task = asyncio.create_task(self._check_until_settled(uid), name=f"k8s-adoption-{pod}")
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)

    async def _check_until_settled(self, uid: str) -> None:
        try:
            while (adopted := self._adopted.get(uid)) is not None:
                self._checking[uid] = False
                await self._hand_over_if_held(uid, *adopted)
                if not self._checking.get(uid):
                    return
        finally:
            self._checking.pop(uid, None)

    async def _hand_over_if_held(self, uid: str, pod: str, session_id: str) -> None:
        """The pod's Sandbox's owner must be the session's claim (k8s/pool_bots.py) before its bot is
        handed the session: a claim's status alone is not the grant. A failed read is tried again while
        the claim is still seen bound to the pod and the bot still idle here."""
        for attempt in range(1, CHECK_ATTEMPTS + 1):
            if self._adopted.get(uid) != (pod, session_id) or not self._idle_here(pod):
                return
            try:
                read = await self._read_pod(pod)
                holder = await self._pool.holder(pod, read) if read is not None else None
            except MachinesError as exc:
                if attempt == CHECK_ATTEMPTS:
                    log.warning("pool bot %s: its adoption for session %s could not be checked after %d tries (%s); "
                                "not handed", pod, session_id, attempt, exc.message)
                    return
                pause = random.uniform(0.5, 1.0) * min(CHECK_RETRY_CAP_SECONDS, self._pause * 2 ** attempt)  # noqa: S311
                log.info("pool bot %s: its adoption could not be checked (%s); trying again in %.1fs", pod,
                         exc.message, pause)
                await asyncio.sleep(pause)
                continue
            if holder == ("session", session_id) and read is not None:
                await self._hand_over_if_linked_here(pod, session_id, str((read.get("metadata") or {}).get("uid")))
            else:
                log.warning("pool bot %s: a claim names it for session %s but its Sandbox is not that claim's "
                            "(%s); not handed", pod, session_id, holder)
            return

    async def aclose(self) -> None:
        for timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        tasks = [*self._handovers, *([self._claims_watch] if self._claims_watch is not None else [])]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
