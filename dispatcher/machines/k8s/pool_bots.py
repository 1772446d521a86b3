"""The agent-sandbox pool's bots: admitted on their pod's identity alone, and whose they are.

A SandboxWarmPool's pods come from its SandboxTemplate, one spec for all, so they hold no credential
of their own: only the channel's URL and `BOT_IDENTITY=k8s` (docs/kubernetes.md, "The warm path").
Such a bot's hello carries its pod's projected token and nothing else. It is admitted only when the
TokenReview authenticates the bots' ServiceAccount for voicefleet's audience (k8s/identity.py, as any
pod's hello), the token names this pod and this pod's uid, the pod is active and is the pool's bot pod
(k8s/pool_pod.py), and the pod's Sandbox (its controller, named as the pod: new Sandboxes name their
pod after themselves) is controlled by:

- a voicefleet SandboxWarmPool (k8s/release_pools.py; its uid, and its name hash in the Sandbox's
  pool label): an idle bot, whose id is its pod's name;
- a SandboxClaim `vf-<session id>` (its uid, the dispatcher's labels, live, on its release's pool, naming
  this Sandbox): session's bot (its claim adopted it, or created it cold).

Anything else (another pool, a Sandbox of someone else's, a bare pod of the same ServiceAccount) is
refused. The pod runs BOT_IMAGE or the one a voicefleet pool's template names (a release's image, or a
new image rolling out: docs/kubernetes.md, "A new bot image"). The API server stores any ownerReference
a writer sends, so each owner is read back and matched by uid (docs/kubernetes.md, "Why every owner is read back"): the
Sandbox's owner is the authority, not the pod's labels. Adoption names the Sandbox in the claim, moves
the Sandbox's owner from the pool to the claim in one write (`completeAdoption`), then writes the
claim's status; the pod's labels follow when the Sandbox controller syncs them (agent-sandbox's
sandboxclaim_controller.go; the pool's `buildSandboxCR` makes the pool each Sandbox's controller).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant, Kind
from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.claims import GROUP_VERSION, bound_sandbox, claim_name
from dispatcher.machines.k8s.identity import PodIdentity
from dispatcher.machines.k8s.pods import APP, LABEL_APP, LABEL_RELEASE, LABEL_SESSION, NAME_PREFIX
from dispatcher.machines.k8s.pool_pod import pod_images, pool_pod_problem
from dispatcher.machines.k8s.release_pools import ReleasePools
from dispatcher.releases.names import DEFAULT_RELEASE

SANDBOX_GROUP = "agents.x-k8s.io"
POOL_GROUP = GROUP_VERSION.split("/", 1)[0]  # extensions.agents.x-k8s.io
# How long a pool bot's admission holds (the records made at its hello): a pool bot dials again, and is
# granted again, whenever its link drops, so this bounds a record, not the pod's life.
POOL_GRANT_SECONDS = 2 * 86_400
SANDBOX_VERBS = ("get sandboxes (agents.x-k8s.io), sandboxclaims, sandboxwarmpools and sandboxtemplates "
                 "(extensions.agents.x-k8s.io) and pods, create tokenreviews")
WARM_POOL_LABEL = "agents.x-k8s.io/warm-pool-sandbox"  # the pool's on each Sandbox it makes: NameHash(pool)
ASSIGNED_SANDBOX = "agents.x-k8s.io/sandbox-name"  # the claim's annotation naming the Sandbox it adopts

log = logging.getLogger("dispatcher.machines.k8s")


def name_hash(name: str) -> str:
    """The controller's `NameHash` (controllers/sandbox_controller.go): FNV-1a 32 bits, eight hex digits."""
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's controlling ownerReference (`controller: true`), or {}."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return {}


def _group(ref: Mapping[str, Any]) -> str:
    return str(ref.get("apiVersion", "")).split("/", 1)[0]


class PoolIdentity:
    """The identity-only hello's grant: an idle pool bot's, or its claim's session's."""

    def __init__(self, identity: PodIdentity, api: KubeApi, *, namespace: str, pools: ReleasePools, image: str,
                 channel_url: str | None, transport: str, clock: Callable[[], float] = time.time,
                 read_pod: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._identity, self._api = identity, api
        self._sandboxes = f"/apis/{SANDBOX_GROUP}/v1beta1/namespaces/{namespace}/sandboxes"
        self._pools_path = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/sandboxwarmpools"
        self._claims = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/sandboxclaims"
        self._templates = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/sandboxtemplates"
        self._pools, self._image, self._clock, self._read_pod = pools, image, clock, read_pod
        self._channel_url, self._transport = channel_url, transport
        self._told_unread = False

    async def grant(self, hello: Hello) -> BotGrant | str:
        """What the hello's pod may be on the channel, or why it is refused."""
        if not hello.identity:
            return "a hello without a credential must carry its pod's identity token (BOT_IDENTITY=k8s)"
        if self._transport not in hello.capabilities:
            # The pool's one web transport (a template of another, mid-rollout): its session could not be served.
            return (f"pod {hello.machine_id} serves {', '.join(hello.capabilities) or 'nothing'}, not "
                    f"{self._transport}, the web sessions this dispatcher offers (TRANSPORTS): the pool's template "
                    "boots another BOT_TRANSPORT")
        found = await self._identity.live_pod(hello, self._read_pod)
        if isinstance(found, str):
            return found
        pod, uid = found
        name = str(hello.machine_id)
        try:
            holder = await self.holder(name, pod)
        except MachinesError as exc:
            return f"the API server did not answer for pod {name} ({exc.reason})"
        if isinstance(holder, str):
            return holder
        kind, subject = holder
        if kind == "session" and hello.session_id not in (None, subject):
            return f"pod {name} is session {subject}'s"
        if kind == "idle" and hello.session_id is not None:  # its hello would be that session's: its values
            return f"pod {name} is the pool's: no claim holds it for session {hello.session_id}"
        return BotGrant(kind, subject, int(self._clock() + POOL_GRANT_SECONDS), machine_uid=uid)

    async def holder(self, name: str, pod: Mapping[str, Any]) -> tuple[Kind, str] | str:
        """("idle", the pod) while the pool holds its Sandbox, ("session", its id) once a session's claim
        does; else why neither does. Every ownerReference read here is checked against its owner as read:
        the API server accepts any ownerReference a writer sends."""
        owner = controller_of(pod)
        if owner.get("kind") != "Sandbox" or _group(owner) != SANDBOX_GROUP or owner.get("name") != name:
            return f"pod {name} is not a Sandbox's pod"
        if problem := await self._pod_problem(name, pod):
            return problem
        sandbox = await self._read("sandbox", f"{self._sandboxes}/{name}")
        if sandbox is None:
            return f"pod {name}'s Sandbox is gone"
        if (sandbox.get("metadata") or {}).get("uid") != owner.get("uid"):
            return f"pod {name} is not its Sandbox's pod"
        held_by = controller_of(sandbox)
        if _group(held_by) != POOL_GROUP:
            return f"pod {name}'s Sandbox is not the pool's nor a claim's"
        pool = str(held_by.get("name", ""))
        if held_by.get("kind") == "SandboxWarmPool" and await self._pools.is_pool(pool):
            return await self._pool_problem(name, pool, sandbox, held_by) or ("idle", name)
        claim = str(held_by.get("name", ""))
        if held_by.get("kind") == "SandboxClaim" and claim.startswith(NAME_PREFIX) and len(claim) > len(NAME_PREFIX):
            session_id = claim[len(NAME_PREFIX):]
            return await self._claim_problem(name, session_id, held_by) or ("session", session_id)
        return f"pod {name}'s Sandbox is not of a voicefleet pool (labelled {LABEL_RELEASE}) nor a session's claim"

    async def _pod_problem(self, name: str, pod: Mapping[str, Any]) -> str | None:
        """A pod not as the pool's template makes it (k8s/pool_pod.py). Who created the pod is not on
        it; an admission policy says."""
        images = {self._image}
        if pod_images(pod.get("spec") or {}) != images:
            for pool in sorted(set((await self._pools.known()).values())):
                if template_image := await self._template_image(pool):
                    images.add(template_image)
        return pool_pod_problem(name, pod, images=images, channel_url=self._channel_url)

    async def _template_image(self, pool_name: str) -> str | None:
        """The one image a voicefleet pool's SandboxTemplate runs now, or None (a read refused for want of
        the grant is logged once, naming it: the pod is then refused for its image)."""
        pool = await self._read("sandboxwarmpool", f"{self._pools_path}/{pool_name}")
        template = ((pool or {}).get("spec") or {}).get("sandboxTemplateRef") or {}
        if not isinstance(name := template.get("name"), str) or not name:
            return None
        try:
            found = await self._read("sandboxtemplate", f"{self._templates}/{name}")
        except MachinesError as exc:
            if not exc.reason.endswith("_unauthorized"):
                raise  # the API server's bad moment: the caller tries again, as after any read
            if not self._told_unread:  # a Role from before this read: said once, the pod refused for its image
                log.warning("the pool's template could not be read: %s", exc.message)
                self._told_unread = True
            return None
        images = pod_images((((found or {}).get("spec") or {}).get("podTemplate") or {}).get("spec") or {})
        return next(iter(images)) if len(images) == 1 else None

    async def _pool_problem(self, name: str, pool_name: str, sandbox: Mapping[str, Any],
                            ref: Mapping[str, Any]) -> str | None:
        """The pool named is that voicefleet pool itself (its uid) and the Sandbox is one it made (its label)."""
        pool = await self._read("sandboxwarmpool", f"{self._pools_path}/{pool_name}")
        if pool is None or (pool.get("metadata") or {}).get("uid") != ref.get("uid"):
            return f"pod {name}'s Sandbox names pool {pool_name} but is not that pool's (its uid differs)"
        labels = (sandbox.get("metadata") or {}).get("labels") or {}
        if labels.get(WARM_POOL_LABEL) != name_hash(pool_name):
            return f"pod {name}'s Sandbox lacks pool {pool_name}'s label {WARM_POOL_LABEL}"
        return None

    async def _claim_problem(self, name: str, session_id: str, ref: Mapping[str, Any]) -> str | None:
        """The claim named is the session's own, live, on its release's pool, and holds this Sandbox."""
        claim = await self._read("sandboxclaim", f"{self._claims}/{claim_name(session_id)}")
        if claim is None or (claim.get("metadata") or {}).get("uid") != ref.get("uid"):
            return f"pod {name}'s Sandbox names claim {claim_name(session_id)} but is not that claim's (uid differs)"
        metadata = claim.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if labels.get(LABEL_APP) != APP or labels.get(LABEL_SESSION) != session_id:
            return f"claim {claim_name(session_id)} is not one this dispatcher made"
        if metadata.get("deletionTimestamp"):
            return f"claim {claim_name(session_id)} is being deleted"
        pool = ((claim.get("spec") or {}).get("warmPoolRef") or {}).get("name")
        release = str(labels.get(LABEL_RELEASE) or DEFAULT_RELEASE)
        try:
            own = await self._pools.pool_of(release)
        except MachinesError as exc:
            return f"claim {claim_name(session_id)}: {exc.message}"
        if pool != own:
            return f"claim {claim_name(session_id)} is on pool {pool}, not release {release}'s ({own})"
        # The controller names its Sandbox in the claim's annotation before it moves the Sandbox's owner,
        # and in its status after: either, and never another Sandbox.
        bound = bound_sandbox(claim) or (metadata.get("annotations") or {}).get(ASSIGNED_SANDBOX)
        if bound != name:
            return f"claim {claim_name(session_id)} holds {bound or 'no Sandbox yet'}, not {name}"
        return None

    async def _read(self, kind: str, path: str) -> dict[str, Any] | None:
        response = await self._api.call("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._api.failed(response, f"read {kind} {path.rsplit('/', 1)[-1]}", SANDBOX_VERBS)
        return dict(response.json())
