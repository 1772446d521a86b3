"""The `pods` mode's warm reserve: idle pods labelled `voicefleet.io/state=idle`, claimed by one JSON Patch.

An idle pod is created like a session's, with no session values: named `vf-idle-<bot id>`, labelled
with its bot id and release, its env the channel's URL, the bot id, the image and the credential
issued for this bot id alone, and with K8S_BOT_SECRET the bots' keys by reference, that Secret's name
noted on the pod (NOTE_BOT_SECRET): once the stack rotates the keys (a new Secret, a new name), a claim
refuses a pod of the old ones (`reserve_bot_stale`: the session starts cold) and the sweep retires it,
unless its maker started after this replica (NOTE_STARTED): that is a newer deploy's reserve (docs/kubernetes.md).
Its bot dials the channel and waits. Its `activeDeadlineSeconds` is
the longest idle wait plus a session: the kubelet ends a forgotten one.

A claim is ONE atomic request, `PATCH` with `application/json-patch+json` (RFC 6902): `test` that
the pod is still labelled idle for this bot, then set the session's labels and annotations. The API
server applies the whole patch or none of it. An `add` under `/metadata/annotations` needs that map to
exist, and the API server does not store an empty one (ObjectMeta's `omitempty`), so an idle pod is
created with one annotation of its own (its launch's id). A failed `test` is 422, but so is any other
patch the API server cannot apply (`applyJSPatch`): after a 422 the pod is read, and only one no
longer idle for this bot was claimed by another replica (`reserve_bot_taken`: the claim moves on to
the next idle bot); one still idle is an error that names the refusal. No
`resourceVersion` is in the patch: the kubelet's status writes change it all the time, and a
changed resourceVersion alone is not a lost race. The pod keeps its name, so a replica that did not
claim it finds the session by its label in one list.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import TRANSPORT
from dispatcher.machines.cells import RoomListing
from dispatcher.machines.k8s.api import JSON_PATCH
from dispatcher.machines.k8s.pods import (
    APP,
    IDLE,
    LABEL_APP,
    LABEL_BOT,
    LABEL_RELEASE,
    LABEL_SESSION,
    LABEL_STATE,
    NOTE_BOT_SECRET,
    NOTE_CLAIMED,
    NOTE_DIGEST,
    NOTE_LAUNCH,
    NOTE_TRANSPORT,
    SESSION,
    charged,
    idle_pod_name,
    pod_body,
    to_machine,
)
from dispatcher.machines.k8s.provider import STRICT, K8sMachines
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE

# When the replica that made an idle pod started (whole seconds): an older deploy's replica keeps filling its
# reserve after a newer one starts, so when a pod was made does not tell whose deploy is the newer.
NOTE_STARTED = "voicefleet.io/maker-started"
# Reads of an idle pod a retirement makes, each followed by a delete with the pod as read for its precondition:
# a kubelet's status write between the two is a 409 too, and an idle pod's status seldom changes.
RETIRE_READS = 4


def pointer(key: str) -> str:
    """A label or annotation key as a JSON Pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`)."""
    return key.replace("~", "~0").replace("/", "~1")


def claim_patch(bot_id: str, spec: LaunchSpec, bot_secret: str | None = None) -> list[dict[str, Any]]:
    labels, notes = "/metadata/labels/", "/metadata/annotations/"
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": labels + pointer(LABEL_STATE), "value": IDLE},
        {"op": "test", "path": labels + pointer(LABEL_BOT), "value": bot_id},
        # started with this dispatcher's bot keys (K8S_BOT_SECRET), not a Secret they were rotated out of
        {"op": "test", "path": notes + pointer(NOTE_BOT_SECRET), "value": bot_secret or ""},
        {"op": "replace", "path": labels + pointer(LABEL_STATE), "value": SESSION},
        {"op": "add", "path": labels + pointer(LABEL_SESSION), "value": spec.session_id},
        {"op": "add", "path": notes + pointer(NOTE_DIGEST), "value": spec.body_digest},
        {"op": "add", "path": notes + pointer(NOTE_CLAIMED), "value": str(int(time.time()))},
    ]
    if spec.transport:
        patch.append({"op": "add", "path": notes + pointer(NOTE_TRANSPORT), "value": spec.transport})
    return patch


class K8sWarmMachines(K8sMachines):
    def __init__(self, *args: Any, transport: str = "daily", max_idle_seconds: float, max_session_seconds: int,
                 turn_away: bool = False, **kw: Any) -> None:
        """`turn_away`: one cell of several (k8s/cell_reserve.py): a refused create is answered at once."""
        super().__init__(*args, **kw)
        self.transport = transport  # idle bots serve the deployment's first transport
        self._turn_away = turn_away
        self._idle_deadline = math.ceil(max_idle_seconds) + max_session_seconds
        self._exits: Recent[str, str] = Recent(1000)  # bot id → why its idle pod ended, as last listed
        self._adopted: Recent[str, str] = Recent(1000)  # bot id → the session this replica's claim re-tagged it for
        # A creationTimestamp has whole seconds: one in this replica's first second counts as created since.
        self._started = math.floor(time.time())

    @property
    def create_rate(self) -> Rate | None:
        return None  # the API server has no create limit of its own to mirror: the reserve paces itself

    def reported_image(self, image: str | None) -> str:
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.run_idle(bot_id, channel_token, image=image, release=release)

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The idle pod's create (in a cell of several, its token already taken from the cells' buckets).
        There (`turn_away`) the first try is sent once, as a cold create's is (k8s/cells.py `run_in`): a
        429, a quota or an API server never connected to is answered at once, for the cell to be drained;
        one sent but unanswered, or a 5xx, is retried in this cluster (the pod's name makes it safe)."""
        try:
            await self._create_idle(bot_id, channel_token, image=image, release=release, once=self._turn_away)
        except MachinesError as exc:
            if not self._turn_away or exc.reason != "k8s_unavailable" or exc.nothing_sent:
                raise
            await self._create_idle(bot_id, channel_token, image=image, release=release, once=False)

    async def _create_idle(self, bot_id: str, channel_token: str | None, *, image: str | None, release: str,
                           once: bool) -> None:
        name = idle_pod_name(bot_id)
        values = {MACHINE_ID_VARIABLE: bot_id, TRANSPORT: self.transport}
        if channel_token is not None:  # this bot's own credential (the deployment's secret stays here)
            values[CHANNEL_TOKEN_VARIABLE] = channel_token
        body = pod_body(self.settings, name, image=self.reported_image(image),
                        env=self.launch_env(values, self.reported_image(image)),
                        labels={LABEL_STATE: IDLE, LABEL_BOT: bot_id, LABEL_RELEASE: release},
                        # never empty (the claim adds to it); the keys it starts with, which a claim tests
                        annotations={NOTE_LAUNCH: secrets.token_hex(8), NOTE_BOT_SECRET: self._bot_secret,
                                     NOTE_STARTED: str(self._started)},
                        deadline_seconds=self._idle_deadline)
        response = await self.api.request("POST", json=body, params=STRICT, backoff=self.api.once if once else None)
        if response.status_code not in (201, 409):  # 409: this bot's pod exists (a lost answer, retried)
            raise self.api.failed(response, f"create idle pod {name}")

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this namespace holds `bot_id`'s idle pod, unclaimed (a cell of several: k8s/cell_reserve.py
        asks every cell): named for the bot and labelled idle with its bot id, as its create wrote it. An
        ended one counts (its bot is refused as ended, in this cell); a claimed one does not (it is a
        session's: a retirement by bot id must never reach it). Raises when the API server does not answer."""
        pod = await self.read_pod(idle_pod_name(bot_id))
        labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
        return pod is not None and labels.get(LABEL_APP) == APP and labels.get(LABEL_STATE) == IDLE \
            and labels.get(LABEL_BOT) == bot_id

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        name = idle_pod_name(bot_id)
        patch = claim_patch(bot_id, spec, self.settings.bot_secret)
        response = await self.api.request("PATCH", f"/{name}", content=json.dumps(patch).encode(),
                                          params=STRICT, headers={"Content-Type": JSON_PATCH})
        if response.status_code == 404:
            raise MachinesError("reserve_bot_gone", f"idle pod {name} is gone")
        if response.status_code == 422:  # a failed `test`, or a patch the API server could not apply
            pod = await self._refused_claim(bot_id, spec.session_id, response)
        elif response.status_code != 200:
            raise self.api.failed(response, f"claim idle pod {name}")
        else:
            pod = response.json()
        self._adopted[bot_id] = spec.session_id  # re-tagged here: a failure from here on retires it (`retire`)
        machine = to_machine(pod)
        if not machine.state.is_active:
            raise MachinesError("reserve_bot_gone", f"idle pod {name} has ended")
        self._pods[spec.session_id] = name
        self.remember(spec.session_id, pod)
        return LaunchResult(machine, created=True, claimed=True)

    async def _refused_claim(self, bot_id: str, session_id: str, response: HttpResponse) -> dict[str, Any]:
        """Why a claim's patch was 422, read from the pod: this session's own claim (a retried patch
        whose first answer was lost: the pod, claimed), claimed by another replica (no longer idle for
        this bot), gone, or refused for another reason (it is still idle: the API server's words)."""
        name = idle_pod_name(bot_id)
        pod = await self.read_pod(name)
        if pod is None:
            raise MachinesError("reserve_bot_gone", f"idle pod {name} is gone")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_STATE) == SESSION and labels.get(LABEL_SESSION) == session_id:
            return pod
        if labels.get(LABEL_STATE) != IDLE or labels.get(LABEL_BOT) != bot_id:
            raise MachinesError("reserve_bot_taken", f"idle pod {name} was claimed by another replica")
        if self._stale(pod):
            raise MachinesError("reserve_bot_stale", f"idle pod {name} holds bot keys of another Secret than "
                                                     f"K8S_BOT_SECRET ({self._bot_secret or 'none'})")
        raise self.api.failed(response, f"claim idle pod {name}")

    async def retire(self, bot_id: str) -> None:
        """`delete_idle`, whether it deleted the pod or found nothing to delete."""
        await self.delete_idle(bot_id)

    async def delete_idle(self, bot_id: str) -> bool:
        """Deletes the bot's pod only while it is still idle for this bot, or carries the session this
        replica's own claim gave it (a claim that failed after its re-tag): a retirement decided on an
        older listing, or at a replica that knew the bot, never reaches a session another replica claimed
        it for. The delete's preconditions are the pod as read (its uid and resourceVersion), so a claim
        between the read and the delete makes it a 409, and the pod is read again. Whether this call
        deleted it: gone, being deleted already, or claimed for another session is False (a no-op)."""
        name = idle_pod_name(bot_id)
        for _ in range(RETIRE_READS):
            pod = await self.read_pod(name)
            metadata = (pod or {}).get("metadata") or {}
            if pod is None or metadata.get("deletionTimestamp") or not self._retirable(bot_id, metadata):
                return False
            read = {key: str(metadata[key]) for key in ("uid", "resourceVersion") if metadata.get(key)}
            if await self.delete_pod(name, preconditions=read):
                self._adopted.pop(bot_id, None)
                return True
        raise MachinesError("k8s_conflict", f"idle pod {name} changed under each of {RETIRE_READS} deletes: "
                                            "left to the sweep", retry_after=1.0)

    def _retirable(self, bot_id: str, metadata: dict[str, Any]) -> bool:
        """Idle for this bot, or claimed here for the session its labels name (`retire` says why)."""
        labels = metadata.get("labels") or {}
        if labels.get(LABEL_APP) != APP or labels.get(LABEL_BOT) != bot_id:
            return False
        if labels.get(LABEL_STATE) == IDLE:
            return True
        claimed = self._adopted.get(bot_id)
        return labels.get(LABEL_STATE) == SESSION and claimed is not None and labels.get(LABEL_SESSION) == claimed

    async def idle_machines(self) -> list[IdleMachine]:
        """Idle pods, ended ones too: the sweep deletes those (from a dispatcher that died, no one else would).
        Counted (over K8S_CELLS, in the cell's room) as the namespace's quota charges them: an ended one not; one
        being deleted, or another deploy's, though left out of the list, until it is gone."""
        idle: list[IdleMachine] = []
        pods, now = await self.list_pods(f"{LABEL_APP}=bot,{LABEL_STATE}={IDLE}"), time.time()
        for pod in pods:
            metadata = pod.get("metadata") or {}
            bot_id = (metadata.get("labels") or {}).get(LABEL_BOT)
            if not bot_id or metadata.get("deletionTimestamp"):
                continue  # being deleted: retired already
            machine = to_machine(pod)
            if not machine.state.is_active and machine.detail:
                self._exits[bot_id] = machine.detail
            if self._of_newer_deploy(pod, machine.created_at) and machine.state.is_active:
                continue  # another deploy's reserve, made since this replica started: its replicas keep it
            # Started with keys since rotated out (another K8S_BOT_SECRET): listed as created at the epoch,
            # so the sweep retires it at once, as a bot of an old image is; a claim refuses it meanwhile.
            idle.append(IdleMachine(bot_id, 0.0 if self._stale(pod) else machine.created_at))
        return RoomListing(idle, sum(charged(pod, now) for pod in pods))

    def _of_newer_deploy(self, pod: dict[str, Any], created_at: float) -> bool:
        """Of other keys (not unmarked: those predate the mark), made by a replica started since this one (a pod
        made before NOTE_STARTED was: created since this replica started)."""
        notes = (pod.get("metadata") or {}).get("annotations") or {}
        mark = notes.get(NOTE_BOT_SECRET)
        if mark is None or mark == self._bot_secret:
            return False
        try:
            return int(notes[NOTE_STARTED]) >= self._started
        except (KeyError, ValueError):
            return created_at >= self._started

    @property
    def _bot_secret(self) -> str:
        return self.settings.bot_secret or ""

    def _stale(self, pod: dict[str, Any]) -> bool:
        """Whether an idle pod started with other bot keys than this dispatcher's (a pod from before the
        mark has none: it counts as stale once)."""
        return ((pod.get("metadata") or {}).get("annotations") or {}).get(NOTE_BOT_SECRET) != self._bot_secret

    async def _find_claimed(self, session_id: str) -> dict[str, Any] | None:
        """A claimed idle pod labelled with the session (one label-selected list), or None."""
        for pod in await self.list_pods(f"{LABEL_APP}=bot,{LABEL_SESSION}={session_id}"):
            name = str((pod.get("metadata") or {}).get("name", ""))
            if name.startswith("vf-idle-"):
                self._pods[session_id] = name
                return pod
        return None

    def exit_detail(self, bot_id: str) -> str | None:
        return self._exits.get(bot_id)
