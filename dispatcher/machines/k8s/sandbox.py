"""`MACHINES=k8s` in the `agent-sandbox` mode: one SandboxClaim per session against its release's
SandboxWarmPool (k8s/release_pools.py; agent-sandbox's extensions, `v1beta1`; docs/kubernetes.md).

A start creates the claim `vf-<session id>` (k8s/claims.py); the controller adopts a warm Sandbox of
the pool for it, or creates one cold, and writes `status.sandbox.name` with the forwarded `Ready`.
A replay finds the claim (409 AlreadyExists → read it) and accepts it only on its release's pool and not
being deleted, as the official SDK does (`validate_claim_for_adoption`); a retried create that meets
the claim its own lost answer made (its launch id, as a pod's) reports it created. A launch whose every
create went unanswered is reconciled as the pods mode's (machines/lost_creates.py). `wait_started` watches
the claim (k8s/watch.py) from the version its create or replay answered (else a read) until it is bound
and ready, or ended: the binding is seen as the controller writes it, with no polling. No launch value
and no credential goes on the claim: every pod is the template's, its bot admitted on its pod's identity
alone once the claim holds its Sandbox, warm or cold (k8s/pool_bots.py), its values sent over the channel;
a hello presenting a credential is refused (`NoCredentialIssued`). `stop` deletes the claim in the
foreground (its Sandbox and pod go by owner reference), keeping how a finished one ended; a bot that
exits needs no call: its claim expires FINISHED_KEEP_SECONDS later (k8s/claims.py says why).

The warm path (docs/kubernetes.md, "The warm path"): the pool's bots dial with their pod's identity
alone (k8s/pool_bots.py). A replica holding idle pool bots, or starts not bound yet, watches voicefleet's
claims (one watch, k8s/handover.py) and hands a bound pod's bot, idle here, its session once the pod's
Sandbox is read back as its claim's (`BotChannels.hand_over`), whichever replica started it.
Each release's pool's size is the reserve's planner's (`scale_pool`, the `scale` subresource, written by
dispatcher/reserve/pool_sizing.py); `settle` reads and reports the pools and sizes the dispatcher found.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import NoCredentialIssued
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.k8s.claims import (
    GROUP_VERSION,
    bound_sandbox,
    claim_body,
    claim_machine,
    claim_name,
)
from dispatcher.machines.k8s.handover import PoolHandover
from dispatcher.machines.k8s.hello_precheck import PrecheckedPool
from dispatcher.machines.k8s.identity import PodIdentity
from dispatcher.machines.k8s.pods import (
    LABEL_APP,
    LABEL_SESSION,
    NOTE_DIGEST,
    NOTE_LAUNCH,
    NOTE_TRANSPORT,
    made_by,
    to_machine,
)
from dispatcher.machines.k8s.pool_bots import PoolIdentity
from dispatcher.machines.k8s.provider import DEADLINE_SLACK_SECONDS, LIST_PAGE, STRICT, K8sMachines
from dispatcher.machines.k8s.release_pools import ReleasePools
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.machines.k8s.watch import ObjectWatch
from dispatcher.machines.lost_creates import found_after_conflict
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.outbound.retry import Backoff

CLAIM_VERBS = ("create, get, list, watch and delete sandboxclaims, get sandboxwarmpools, "
               "get sandboxtemplates, get and patch sandboxwarmpools/scale, get, list and watch pods, get sandboxes")
MERGE_PATCH = "application/merge-patch+json"

log = logging.getLogger("dispatcher.machines.k8s")


class SandboxClaims(K8sMachines):
    """The pods mode's client, token, pod reads and launch env; claims instead of pods."""

    def __init__(self, settings: K8sSettings, *, channel_url: str | None = None) -> None:
        super().__init__(settings, channel_url=channel_url)
        self._once = Backoff(attempts=1, deadline=settings.timeout)  # the pool's size: one try, bounded
        base = f"/apis/{GROUP_VERSION}/namespaces/{settings.namespace}"
        self.claims_path, self.pools_path = f"{base}/sandboxclaims", f"{base}/sandboxwarmpools"
        self.pools = ReleasePools(self.api, self.pools_path, default_pool=settings.warm_pool,
                                  namespace=settings.namespace, rbac=CLAIM_VERBS)
        self.pod_tokens = PodIdentity(self.read_pod, self.api.review, namespace=settings.namespace,
                                      audience=settings.token_audience, account=settings.bot_account)
        self.identity = NoCredentialIssued("each dials with its pod's identity alone (BOT_IDENTITY=k8s, no "
                                           "BOT_CHANNEL_TOKEN in its SandboxTemplate)")
        self.pool_identity = PoolIdentity(self.pod_tokens, self.api, namespace=settings.namespace,
                                          pools=self.pools, image=settings.image,
                                          transport=settings.pool_transport, channel_url=channel_url,
                                          read_pod=self.read_pod)
        self.handover = PoolHandover(self.api, self.pool_identity, claims_path=self.claims_path,
                                     pause=settings.poll_seconds, rbac=CLAIM_VERBS, read_pod=self.read_pod)

    def watch_channels(self, channels: BotChannels) -> None:
        """The pool's bots dial with their pod's identity alone (k8s/pool_bots.py); a start here hands
        the idle one its claim adopted its session (k8s/handover.py)."""
        self.handover.watch_channels(channels)
        # A hello's token is read first, so junk costs no TokenReview (k8s/hello_precheck.py).
        channels.identity_only = PrecheckedPool(self.pool_identity, audience=self.settings.token_audience,
                                                username=self.pod_tokens.username)

    def _failed(self, response: HttpResponse, what: str) -> MachinesError:
        return self.api.failed(response, what, CLAIM_VERBS)

    async def read_claim(self, session_id: str) -> dict[str, Any] | None:
        name = claim_name(session_id)
        response = await self.api.call("GET", f"{self.claims_path}/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failed(response, f"read sandboxclaim {name}")
        return dict(response.json())

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        """The session's claim; `launch` (the pods mode's) reconciles one whose answer was lost."""
        name, launch_id = claim_name(spec.session_id), secrets.token_hex(8)
        own_pool = await self.pools.pool_of(spec.release)  # its release's: it adopts only that version's pods
        notes = {NOTE_DIGEST: spec.body_digest, NOTE_LAUNCH: launch_id,
                 **({NOTE_TRANSPORT: spec.transport} if spec.transport else {})}
        body = claim_body(name, pool=own_pool, session_id=spec.session_id, release=spec.release,
                          notes=notes,
                          shutdown_after_seconds=spec.max_session_seconds + DEADLINE_SLACK_SECONDS)
        response = await self.api.call("POST", self.claims_path, json=body, params=STRICT)
        if response.status_code == 201:
            self._remember(spec.session_id, response.json())
            self.handover.follow(spec.session_id, response.json())
            return LaunchResult(claim_machine(response.json()), created=True)
        if response.status_code != 409:
            raise self._failed(response, f"create sandboxclaim {name}")
        # AlreadyExists: a replay, or a lost answer
        existing = await found_after_conflict("k8s", f"sandboxclaim {name}", self.read_claim(spec.session_id))
        pool = ((existing.get("spec") or {}).get("warmPoolRef") or {}).get("name")
        if pool != own_pool or (existing.get("metadata") or {}).get("deletionTimestamp"):
            raise MachinesError("k8s_conflict", f"sandboxclaim {name} is on pool {pool} or being deleted; "
                                "try again once it is gone", retry_after=5.0)
        self._remember(spec.session_id, existing)
        self.handover.follow(spec.session_id, existing)
        return LaunchResult(claim_machine(existing), created=made_by(existing, launch_id))


    def _remember(self, session_id: str, claim: dict[str, Any]) -> None:
        """A binding claim as this replica's create or replay answered it: a wait watches from its version."""
        metadata = claim.get("metadata") or {}
        if (version := metadata.get("resourceVersion")) and claim_machine(claim).state is MachineState.STARTING:
            self._versions[session_id] = (str(metadata.get("name", "")), str(version))

    async def _with_exit_detail(self, claim: dict[str, Any], machine: Machine) -> Machine:
        """A failed claim's detail is its bot's exit (its code), read from the pod while it is there."""
        if machine.state is MachineState.FAILED and (sandbox := bound_sandbox(claim)):
            pod = await self.read_pod(sandbox)
            if pod is not None and (detail := to_machine(pod).detail):
                return replace(machine, detail=detail)
        return machine

    async def status(self, session_id: str) -> Machine | None:
        claim = await self.read_claim(session_id)
        if claim is None:
            return self._ended.get(session_id)
        return await self._with_exit_detail(claim, claim_machine(claim))

    async def _starting(self, session_id: str) -> Machine | tuple[str, str]:
        """The session's claim read: its machine once past `starting`, else (its name, its version)."""
        claim = await self.read_claim(session_id)
        if claim is None:
            raise MachinesError("not_found", f"session {session_id} has no sandboxclaim")
        machine = claim_machine(claim)
        if machine.state is not MachineState.STARTING:
            return await self._with_exit_detail(claim, machine)
        return claim_name(session_id), str(claim["metadata"].get("resourceVersion", ""))

    async def _watch_start(self, name: str, since: str, deadline: float) -> Machine:
        """The claim watched (`wait_started`, the pods mode's) until it is bound and ready, or ended."""
        watch = ObjectWatch(self.api, self.claims_path, name, _bound(name), pause=self.settings.poll_seconds,
                            rbac=CLAIM_VERBS)
        claim, machine = await watch.until(since or None, deadline)
        return await self._with_exit_detail(claim, machine)

    async def stop(self, session_id: str) -> bool:
        """The claim deleted in the foreground; a finished one's end (its pod's reason, read while the
        claim keeps it) is kept first, on this replica, for GET /sessions/{id}."""
        name = claim_name(session_id)
        claim = await self.read_claim(session_id)
        if claim is None:
            return False
        machine = claim_machine(claim)
        if not machine.state.is_active and not (claim.get("metadata") or {}).get("deletionTimestamp"):
            self._ended[session_id] = await self._with_exit_detail(claim, machine)
        response = await self.api.call("DELETE", f"{self.claims_path}/{name}", json={
            "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 202):
            raise self._failed(response, f"delete sandboxclaim {name}")
        return True

    async def list(self) -> list[Machine]:
        claims: list[Machine] = []
        params = {"labelSelector": f"{LABEL_APP}=bot,{LABEL_SESSION}", "limit": str(LIST_PAGE)}
        for _ in range(1000):  # a thousand pages of 500 is far past any namespace's quota
            response = await self.api.call("GET", self.claims_path, params=params)
            if response.status_code != 200:
                raise self._failed(response, "list sandboxclaims")
            page = response.json()
            claims += [claim_machine(c) for c in page.get("items") or [] if isinstance(c, dict)]
            if not (token := (page.get("metadata") or {}).get("continue")):
                break
            params = {**params, "continue": token}
        return claims

    async def settle(self) -> None:
        """At start (`SettlesAtStart`): each release's pool and its size as found, reported before the
        planner sizes them. A pool that is not there, or a refused read, is a warning: every claim on it
        would be refused (WarmPoolNotFound)."""
        try:
            pools = self.pools.with_default(await self.pools.refresh())
            for release, pool in sorted(pools.items()):
                response = await self.api.call("GET", f"{self.pools_path}/{pool}/scale")
                if response.status_code == 404:
                    log.warning("release %s: no such SandboxWarmPool %s in K8S_NAMESPACE %s: its claims will be "
                                "refused (WarmPoolNotFound) until it is created",
                                release, pool, self.settings.namespace)
                    continue
                if response.status_code != 200:
                    raise self._failed(response, f"read sandboxwarmpool {pool}'s scale")
                replicas = int((response.json().get("spec") or {}).get("replicas") or 0)
                log.info("release %s: sandboxwarmpool %s keeps %d Sandbox(es) warm; the reserve's planner sizes it "
                         "from now on (RESERVE_* settings)", release, pool, replicas)
        except MachinesError as exc:
            log.warning("the warm pools could not be read: %s", exc.message)

    async def aclose(self) -> None:
        await self.handover.aclose()
        await super().aclose()

    async def pool_size(self, release: str) -> int:
        """The release's pool's desired warm Sandboxes (`spec.replicas` of its `scale`), once."""
        pool = await self.pools.pool_of(release)
        response = await self.api.call("GET", f"{self.pools_path}/{pool}/scale", backoff=self._once)
        if response.status_code != 200:
            raise self._failed(response, f"read sandboxwarmpool {pool}'s scale")
        return int((response.json().get("spec") or {}).get("replicas") or 0)

    async def scale_pool(self, release: str, replicas: int) -> None:
        """Sets the release's pool's desired warm Sandboxes, once: the caller holds a lease for the write
        and must not see it land after the lease could have moved. Only `spec.replicas` is written."""
        pool = await self.pools.pool_of(release)
        response = await self.api.call("PATCH", f"{self.pools_path}/{pool}/scale", backoff=self._once,
                                       content=json.dumps({"spec": {"replicas": replicas}}).encode(),
                                       headers={"Content-Type": MERGE_PATCH})
        if response.status_code != 200:
            raise self._failed(response, f"scale sandboxwarmpool {pool}")

    async def retiring_releases(self) -> frozenset[str]:
        """The releases whose pool is labelled retiring by the stack (dispatcher/machines/k8s/release_pools.py)."""
        return await self.pools.retiring()

    async def pool_taking(self, release: str, within_seconds: float) -> int:
        """The release's claims made in the last `within_seconds` and not yet bound: the pool's controller may
        delete the Sandbox one is adopting when the pool shrinks meanwhile (it deletes from its cache,
        unconditionally: `sandboxwarmpool_controller.go`). An older one went cold or is stuck, and is no
        pool Sandbox's."""
        since = time.time() - within_seconds
        return sum(1 for claim in await self.list()
                   if claim.state is MachineState.STARTING and claim.created_at > since and claim.release == release)


def _bound(name: str) -> Callable[[str, dict[str, Any] | None], tuple[dict[str, Any], Machine] | None]:
    """A watched claim's judge: the claim and its machine once past `starting`; a claim deleted before
    it was bound has ended."""

    def judge(event: str, claim: dict[str, Any] | None) -> tuple[dict[str, Any], Machine] | None:
        if claim is None:
            raise MachinesError("not_found", f"sandboxclaim {name} is gone")
        machine = claim_machine(claim)
        if machine.state is not MachineState.STARTING:
            return claim, machine
        if event == "DELETED":
            return claim, replace(machine, state=MachineState.ENDED, detail="deleted before it was bound")
        return None

    return judge
