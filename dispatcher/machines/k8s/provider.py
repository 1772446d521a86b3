"""`MACHINES=k8s` in the `pods` mode: one bare Pod per session in K8S_NAMESPACE.

Idempotency: the pod is named for its session (`vf-<session id>`); a second create is 409
AlreadyExists and the pod is read instead, so a replayed start, a start at another replica and a
create whose answer was lost all find the one pod (a create is therefore safe to retry). The pod
carries its launch call's own id (NOTE_LAUNCH): a retried create that meets the pod its own lost
answer made reports it created, a replay's does not. A launch whose every create was lost is
reconciled as every provider's is (machines/lost_creates.py): the API server may have stored the
pod, whose bot would run for a refused start, so the launch looks for it and removes it. The
session's values travel in the container's `env` only without a channel; with one, the pod holds its
session's id, cap and transport and no credential: its bot dials with its pod's identity alone and takes
its values over the channel (k8s/session_pods.py). `stop` deletes the pod with a grace
period: the kubelet sends SIGTERM and the bot says goodbye; an ended session's pod it deletes at
once, so the reaper's stop of each ended session leaves none behind. A session's pod is found by its name,
a claimed idle pod (k8s/reserve.py) by its session label; the reaper's list is one label-selected list.
`?wait=started` watches the pod (k8s/watch.py) from the version its create or claim answered (or a
read, at another replica), so the start is seen as the kubelet writes it, with no polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, CHANNEL_URL_VARIABLE, IDENTITY_VARIABLE, IMAGE_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import MachineIdentity
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState, WaitTimeout
from dispatcher.machines.bot_environment import (
    MAX_SESSION_SECONDS,
    SESSION_ID,
    TRANSPORT,
    bot_environment,
    session_transport,
)
from dispatcher.machines.cells import RoomListing
from dispatcher.machines.k8s.api import KubeApi
from dispatcher.machines.k8s.hello_precheck import PrecheckedPool
from dispatcher.machines.k8s.identity import PodIdentity
from dispatcher.machines.k8s.pods import (
    LABEL_APP,
    LABEL_RELEASE,
    LABEL_SESSION,
    LABEL_STATE,
    NOTE_DIGEST,
    NOTE_LAUNCH,
    NOTE_TRANSPORT,
    SESSION,
    charged,
    made_by,
    pod_body,
    session_pod_name,
    to_machine,
)
from dispatcher.machines.k8s.session_pods import SessionPodIdentity
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.machines.k8s.watch import ObjectWatch
from dispatcher.machines.lost_creates import LostCreates, found_after_conflict
from dispatcher.recent import Recent

STRICT = {"fieldValidation": "Strict"}  # a field the API server does not know is refused, never dropped
LIST_PAGE = 500  # pods per list page (`limit`, then `continue`)
DEADLINE_SLACK_SECONDS = 60  # past the session cap: the bot ends itself first, the kubelet is the backstop


class K8sMachines:
    name = "k8s"
    # A start issues no channel credential (dispatcher/sessions/cold_secrets.py): a session's pod holds
    # none, its bot dials with its pod's identity alone (k8s/session_pods.py).
    issues_credentials = False

    def __init__(self, settings: K8sSettings, *, channel_url: str | None = None) -> None:
        self.settings = settings
        self.bot_image = settings.image
        self._channel_url = channel_url
        self.api = KubeApi(settings)
        self._pods: Recent[str, str] = Recent()  # session id → its pod's name, where it is not `vf-<id>`
        # session id → (its pod's name, the version its create or claim answered): where a wait starts
        self._versions: Recent[str, tuple[str, str]] = Recent(10_000)
        # Ended sessions whose pods `stop` deleted: GET /sessions/{id} still tells how each ended.
        self._ended: Recent[str, Machine] = Recent(10_000)
        self.identity: MachineIdentity = PodIdentity(self.read_pod, self.api.review, namespace=settings.namespace,
                                    audience=settings.token_audience, account=settings.bot_account)
        self._channel_on = False  # the dispatcher has a bot channel: a session's pod holds no secret of it
        self.session_tokens = PodIdentity(self.read_pod, self.api.review, namespace=settings.namespace,
                                          audience=settings.token_audience, account=settings.bot_account)
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kw: Any) -> Self:
        return cls(K8sSettings.from_env(env), channel_url=env.get(CHANNEL_URL_VARIABLE, "").strip() or None, **kw)

    def launch_env(self, values: Mapping[str, str], image: str) -> dict[str, str]:
        """A pod's env: the channel's URL, the image, what the dispatcher tells every bot of its own settings
        (the model service, the Twilio region, JSON logs and the trace collector: K8sSettings.told_bots),
        `values`; with a channel, the bot proves its pod with the pod's projected token (k8s/identity.py,
        k8s/session_pods.py)."""
        channel = {CHANNEL_URL_VARIABLE: self._channel_url} if self._channel_url else {}
        identity = {IDENTITY_VARIABLE: "k8s"} if self._channel_on or CHANNEL_TOKEN_VARIABLE in values else {}
        return {**channel, IMAGE_VARIABLE: image, **identity, **self.settings.told_bots, **values}

    def remember(self, session_id: str, pod: Mapping[str, Any]) -> None:
        """A starting pod as this replica's create or claim answered it: a wait watches from its
        version (the changes since it are replayed, so a wait that comes later misses none)."""
        metadata = pod.get("metadata") or {}
        if (version := metadata.get("resourceVersion")) and to_machine(pod).state is MachineState.STARTING:
            self._versions[session_id] = (str(metadata.get("name", "")), str(version))

    async def read_pod(self, name: str) -> dict[str, Any] | None:
        response = await self.api.request("GET", f"/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.api.failed(response, f"read pod {name}")
        return dict(response.json())

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.create_session(spec)

    async def create_session(self, spec: LaunchSpec, *, once: bool = False) -> LaunchResult:
        """The session's pod created (or met: 409). `once` (one cell of several, k8s/cells.py): the create is
        sent once, unretried, so a 429 is answered at once for another cell to take the launch."""
        name, launch_id = session_pod_name(spec.session_id), secrets.token_hex(8)
        image = spec.image or self.settings.image  # the session's release's, else the deployment's own
        labels = {LABEL_STATE: SESSION, LABEL_SESSION: spec.session_id, LABEL_RELEASE: spec.release}
        notes = {NOTE_DIGEST: spec.body_digest, NOTE_LAUNCH: launch_id,
                 **({NOTE_TRANSPORT: spec.transport} if spec.transport else {})}
        body = pod_body(self.settings, name, image=image, env=self.launch_env(self.session_values(spec), image),
                        labels=labels, annotations=notes,
                        deadline_seconds=spec.max_session_seconds + DEADLINE_SLACK_SECONDS)
        response = await self.api.request("POST", json=body, params=STRICT, backoff=self.api.once if once else None)
        if response.status_code == 201:
            self.remember(spec.session_id, response.json())
            return LaunchResult(to_machine(response.json()), created=True)
        if response.status_code == 409:  # AlreadyExists: this session's pod (a replay, or a lost answer)
            existing = await found_after_conflict("k8s", f"pod {name}", self.read_pod(name))
            self.remember(spec.session_id, existing)
            return LaunchResult(to_machine(existing), created=made_by(existing, launch_id))
        raise self.api.failed(response, f"create pod {name}")

    def session_values(self, spec: LaunchSpec) -> dict[str, str]:
        """What a session's pod holds of it: with a channel its id, cap and transport (no secret: the rest
        comes over the channel); without one, every value (a deployment with no other way to its bots)."""
        if not self._channel_on:
            return bot_environment(spec)
        return {SESSION_ID: spec.session_id, MAX_SESSION_SECONDS: str(spec.max_session_seconds),
                TRANSPORT: session_transport(spec)}

    def watch_channels(self, channels: BotChannels) -> None:
        """A session pod's bot dials with its pod's identity alone (k8s/session_pods.py); its token is read
        first, so junk costs no TokenReview (k8s/hello_precheck.py). No channel: nothing to watch."""
        if channels.credentials is None:
            return
        self._channel_on = True
        channels.identity_only = PrecheckedPool(SessionPodIdentity(self.session_tokens, self.read_pod, time.time),
                                                audience=self.settings.token_audience,
                                                username=self.session_tokens.username)

    async def _session_pod(self, session_id: str) -> dict[str, Any] | None:
        pod = await self.read_pod(self._pods.get(session_id) or session_pod_name(session_id))
        return pod if pod is not None else await self._find_claimed(session_id)

    async def _find_claimed(self, session_id: str) -> dict[str, Any] | None:
        """No reserve here (k8s/reserve.py finds a claimed idle pod by its session label)."""
        return None

    async def status(self, session_id: str) -> Machine | None:
        pod = await self._session_pod(session_id)
        return self._ended.get(session_id) if pod is None else to_machine(pod)

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        """The session's object watched from the version this replica's create answered, else from a read of it."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                known = self._versions.pop(session_id, None)
                if known is None:
                    read = await self._starting(session_id)
                    if isinstance(read, Machine):
                        return read
                    known = read
                return await self._watch_start(*known, deadline)
        except TimeoutError:
            raise WaitTimeout(session_id, timeout) from None

    async def _starting(self, session_id: str) -> Machine | tuple[str, str]:
        """The session's pod read: its machine once past `starting`, else (its name, its version)."""
        pod = await self._session_pod(session_id)
        if pod is None:
            raise MachinesError("not_found", f"session {session_id} has no pod")
        machine = to_machine(pod)
        if machine.state is not MachineState.STARTING:
            return machine
        return machine.machine_id, str(pod["metadata"].get("resourceVersion", ""))

    async def _watch_start(self, name: str, since: str, deadline: float) -> Machine:
        watch = ObjectWatch(self.api, self.api.pods_path, name, _started(name), pause=self.settings.poll_seconds)
        return await watch.until(since or None, deadline)

    async def delete_pod(self, name: str, grace_seconds: int | None = None, *,
                         preconditions: Mapping[str, str] | None = None) -> bool:
        """Delete with the grace period (SIGTERM, then SIGKILL past it; K8S_STOP_GRACE_SECONDS unless
        given); one already gone is no error. `preconditions` (`uid`, `resourceVersion`): the pod is deleted
        only as it was read; False when it changed since (the API server's 409 Conflict), nothing deleted."""
        grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace}
        if preconditions:
            options["preconditions"] = dict(preconditions)
        response = await self.api.request("DELETE", f"/{name}", json=options)
        if preconditions and response.status_code == 409:
            return False
        if response.status_code not in (200, 202, 404):
            raise self.api.failed(response, f"delete pod {name}")
        return True

    async def stop(self, session_id: str) -> bool:
        """A running pod is deleted with its grace period; an ended one at once (grace 0): a bare pod has
        no TTL and the pod GC waits for thousands, while its spec holds the session's credential.
        One already being deleted is left to that deletion (a second, shorter one would cut its goodbye)."""
        pod = await self._session_pod(session_id)
        if pod is None:
            return False
        metadata = pod.get("metadata") or {}
        if not metadata.get("deletionTimestamp"):
            machine = to_machine(pod)
            if not machine.state.is_active:
                self._ended[session_id] = machine  # its exit code and reason outlive the pod, on this replica
            await self.delete_pod(str(metadata["name"]), None if machine.state.is_active else 0)
        return True

    async def list_pods(self, selector: str) -> list[dict[str, Any]]:
        """Every pod of the namespace matching the label selector, page by page."""
        pods: list[dict[str, Any]] = []
        params = {"labelSelector": selector, "limit": str(LIST_PAGE)}
        for _ in range(1000):  # a thousand pages of 500 is far past any namespace's quota
            response = await self.api.request("GET", params=params)
            if response.status_code != 200:
                raise self.api.failed(response, "list pods")
            page = response.json()
            pods += [p for p in page.get("items") or [] if isinstance(p, dict)]
            if not (token := (page.get("metadata") or {}).get("continue")):
                break
            params = {**params, "continue": token}
        return pods

    async def list(self) -> list[Machine]:
        """The sessions' pods, and how many of them the namespace's quota charges (over K8S_CELLS, the cell's
        room): a pod being deleted is listed as ended, but holds its place until it is gone."""
        pods, now = await self.list_pods(f"{LABEL_APP}=bot,{LABEL_SESSION}"), time.time()
        return RoomListing([to_machine(p) for p in pods], sum(charged(p, now) for p in pods))

    async def aclose(self) -> None:
        await self.lost.aclose()
        await self.api.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: the channel's URL is the deployment's (BOT_CHANNEL_URL), sent with each
        pod; the credential travels with each launch."""


def _started(name: str) -> Callable[[str, dict[str, Any] | None], Machine | None]:
    """A watched pod's judge: its machine once past `starting`; a pod deleted before it started has ended."""

    def judge(event: str, pod: dict[str, Any] | None) -> Machine | None:
        if pod is None:
            raise MachinesError("not_found", f"pod {name} is gone")
        machine = to_machine(pod)
        if machine.state is not MachineState.STARTING:
            return machine
        if event == "DELETED":
            return dataclasses.replace(machine, state=MachineState.ENDED, detail="deleted before it started")
        return None

    return judge
