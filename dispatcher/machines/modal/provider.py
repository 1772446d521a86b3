"""`MACHINES=modal`: one Modal Sandbox per session, from the team's bot image on Modal.

`Sandbox.create` in the deployment's App (`MODAL_APP`, created if missing) with the image id
`MODAL_BOT_IMAGE`, the bot's command, the Sandbox's size (`MODAL_CPU`, `MODAL_MEMORY_MB`, `BOT_GPU`)
and `timeout` = max session + grace (at most Modal's 24 h) as the outside cap. The Sandbox is named
`vf-<session>`: a name an unfinished Sandbox of the App holds is refused `ALREADY_EXISTS`, so a second
launch of a session (at any replica) finds the first. Its tags carry the session, the body digest,
the transport and the start time, so any replica answers from Modal alone. The session's values are
an ephemeral `Secret.from_dict`: in the Sandbox's environment, never on its command line, and not
readable back through the API. A finished Sandbox reads as its return code: 0 ended, 137 ended when
`stop` terminated it and failed when Modal did (its tag says which), 124 Modal's timeout, else failed.
A session of a release runs that release's image id (`spec.image`), tagged `voicefleet_release`; an
id Modal does not know (NOT_FOUND) is refused `release_image_missing`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import modal
import modal.exception as modal_errors

from botchannel.contract import CHANNEL_URL_VARIABLE, IDENTITY_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import bot_environment
from dispatcher.machines.creates import Creates
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.machines.modal.calls import ModalCalls, open_client
from dispatcher.machines.modal.identity import ModalSandboxIdentity
from dispatcher.machines.modal.settings import MAX_TIMEOUT_SECONDS, ModalSettings
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.provider_errors import refusal
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import CreateLimits

R = TypeVar("R")
TAG_KIND = "voicefleet"  # "session" or "idle": what `list` and `idle_machines` filter on
TAG_SESSION = "voicefleet_session"
TAG_DIGEST = "voicefleet_digest"
TAG_TRANSPORT = "voicefleet_transport"
TAG_CREATED = "voicefleet_created"  # epoch seconds: the session's start (a claim's, for a reserve Sandbox)
TAG_RELEASE = "voicefleet_release"  # the release the Sandbox runs (kept through a reserve Sandbox's claim)
TAG_STOPPED = "voicefleet_stopped"  # set by `stop` before it terminates: a 137 without it was not ours
NAME_PREFIX = "vf-"
IDLE_PREFIX = NAME_PREFIX + "idle-"  # a reserve Sandbox's name: vf-idle-<bot id> (reserve.py)
TERMINATED, TIMED_OUT = 137, 124
_LIST_CONCURRENCY = 8  # a list reads each Sandbox's tags: this many at a time


def machine_of(sandbox_id: str, tags: dict[str, str], returncode: int | None, scheduled: bool) -> Machine:
    detail = None
    if returncode is None:
        state = MachineState.STARTED if scheduled else MachineState.STARTING
    elif returncode == 0:
        state = MachineState.ENDED
    elif returncode == TERMINATED and TAG_STOPPED in tags:
        state, detail = MachineState.ENDED, "terminated"
    elif returncode == TERMINATED:  # Modal ended it (lost host, out of memory): the session was cut short
        state, detail = MachineState.FAILED, "terminated by Modal (exit code 137)"
    elif returncode == TIMED_OUT:
        state, detail = MachineState.ENDED, "sandbox timeout"
    else:
        state, detail = MachineState.FAILED, f"exit code {returncode}"
    created = tags.get(TAG_CREATED, "")
    return Machine(
        session_id=tags.get(TAG_SESSION, ""),
        machine_id=sandbox_id,
        state=state,
        created_at=float(created) if created.isdigit() else 0.0,
        body_digest=tags.get(TAG_DIGEST),
        detail=detail,
        transport=tags.get(TAG_TRANSPORT),
        release=tags.get(TAG_RELEASE),
    )


async def _task_id(sandbox: Any) -> str | None:
    """The task (container) Modal has given the Sandbox, None before it has one: one `SandboxGetTaskId`
    call. The client's own look-up waits for one; at a zero deadline it raises TimeoutError instead of
    waiting (modal/sandbox/_common.py `task_id_from_response`), which the client hands on as its own
    `modal.exception.TimeoutError`."""
    try:
        return str(await sandbox._get_task_id.aio(timeout=0)) or None
    except (TimeoutError, modal_errors.TimeoutError):
        return None


async def _scheduled(sandbox: Any) -> bool:
    """Whether Modal has given the Sandbox a task (a container)."""
    return await _task_id(sandbox) is not None


class ModalMachines:
    name = "modal"

    def __init__(self, settings: ModalSettings, *, coordination: CreateLimits, channel_url: str | None = None) -> None:
        self.settings = settings
        self.channel_url = channel_url
        self.calls = ModalCalls(settings)
        self.creates = Creates(self.name, coordination, settings.create_rate)
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled
        self.identity = ModalSandboxIdentity(discovery_url=settings.oidc_discovery_url, app_id=self._app_id,
                                             running_task=self.running_task)
        self._client: modal.Client | None = None
        self._app: Any = None
        self._image: Any = None
        self._release_images: Recent[str, Any] = Recent()  # image id → its Image, looked up by its first create
        self._opening = asyncio.Lock()

    @staticmethod
    def sandbox_name(session_id: str) -> str:
        return NAME_PREFIX + session_id

    async def _ready(self) -> tuple[modal.Client, Any, Any]:
        """The client, App and image, opened and looked up once (a lock: concurrent first starts share it)."""
        async with self._opening:
            if self._client is None:
                client = open_client(self.settings)
                await self.calls.once("connect", client.__aenter__)
                self._client = client
            if self._app is None:
                self._app = await self.calls.call("look up the App", lambda: modal.App.lookup.aio(
                    self.settings.app, create_if_missing=True, client=self._client))
            if self._image is None:  # looked up (ImageFromId) by the first create that uses it
                self._image = modal.Image.from_id(self.settings.image_id, client=self._client)
        return self._client, self._app, self._image

    async def _app_id(self) -> str:
        _, app, _ = await self._ready()
        return str(app.app_id)

    async def running_task(self, kind: str, subject: str) -> str | None:
        """The task id of the running Sandbox created for a channel grant (a session's, or the reserve
        bot's, which keeps its name once claimed), None when there is none or it has finished."""
        sandbox = await (self._by_name(IDLE_PREFIX + subject) if kind == "idle" else self._find(subject))
        if sandbox is None or sandbox.returncode is not None:
            return None
        return await self.calls.call("read Sandbox task", lambda: _task_id(sandbox))

    def sandbox_timeout(self, seconds: int) -> int:
        return min(seconds + self.settings.grace_seconds, MAX_TIMEOUT_SECONDS)

    async def _create(self, name: str, tags: dict[str, str], env: dict[str, str], timeout: int, *,
                      image_id: str | None = None, release: str = DEFAULT_RELEASE) -> Any:
        """A Sandbox of `image_id` (a release's; None: the deployment's own image)."""
        client, app, image = await self._ready()
        if image_id is not None and image_id != self.settings.image_id:
            image = self._release_images.get(image_id)
            if image is None:
                image = self._release_images[image_id] = modal.Image.from_id(image_id, client=client)
        s = self.settings
        if self.channel_url:  # its bot dials with the Sandbox's identity token (identity.py)
            env = {CHANNEL_URL_VARIABLE: self.channel_url, IDENTITY_VARIABLE: "modal", **env}
        secret = modal.Secret.from_dict(dict(env))
        try:
            return await self.calls.call(f"create Sandbox {name}", lambda: modal.Sandbox.create.aio(
                *s.bot_command, app=app, name=name, tags=tags, image=image, secrets=[secret], timeout=timeout,
                cpu=s.cpu, memory=s.memory_mb, gpu=s.gpu, include_oidc_identity_token=True, client=client),
                passed=(modal_errors.AlreadyExistsError, modal_errors.NotFoundError))
        except modal_errors.NotFoundError as exc:
            # The App is looked up (created if missing) first: what a create names that may be unknown is its image.
            if image_id is not None and image_id != s.image_id:
                self._release_images.pop(image_id, None)
                raise ReleaseImageMissing(release, "Modal", f"Modal has no image {image_id}: {exc}") from None
            raise refusal(MachinesError, "modal", 404, f"Modal refused to create Sandbox {name}: {exc}") from None

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        name = self.sandbox_name(spec.session_id)
        tags = {TAG_KIND: "session", TAG_SESSION: spec.session_id, TAG_DIGEST: spec.body_digest,
                TAG_CREATED: str(int(time.time())), TAG_RELEASE: spec.release,
                **({TAG_TRANSPORT: spec.transport} if spec.transport else {})}
        await self.creates.cold_turn()  # ahead of the reserve's refills; refused past its max wait
        try:
            sandbox = await self._create(name, tags, bot_environment(spec),
                                         self.sandbox_timeout(spec.max_session_seconds),
                                         image_id=spec.image, release=spec.release)
        except modal_errors.AlreadyExistsError:  # this session's Sandbox runs: an idempotent replay
            existing = await self.status(spec.session_id)
            if existing is not None:
                return LaunchResult(existing, created=False)
            raise
        return LaunchResult(machine_of(sandbox.object_id, tags, None, scheduled=False), created=True)

    async def _by_name(self, name: str) -> Any | None:
        client, _, _ = await self._ready()
        try:
            return await self.calls.call(f"find Sandbox {name}", lambda: modal.Sandbox.from_name.aio(
                self.settings.app, name, include_terminated=True, client=client), passed=(modal_errors.NotFoundError,))
        except modal_errors.NotFoundError:
            return None

    async def _tagged(self, tags: dict[str, str]) -> list[Any]:
        """Running Sandboxes of the App with at least `tags` (Modal lists unfinished ones only)."""
        client, app, _ = await self._ready()

        async def collect() -> list[Any]:
            return [sandbox async for sandbox in modal.Sandbox.list.aio(app_id=app.app_id, tags=tags, client=client)]

        return await self.calls.call("list Sandboxes", collect)

    async def _find(self, session_id: str) -> Any | None:
        """The session's Sandbox: named for it, or a claimed reserve Sandbox tagged with it."""
        sandbox = await self._by_name(self.sandbox_name(session_id))
        if sandbox is None:
            claimed = await self._tagged({TAG_SESSION: session_id})
            sandbox = claimed[0] if claimed else None
        return sandbox

    async def read(self, sandbox: Any) -> Machine:
        """A Sandbox as a `Machine`: its tags, its result, and whether Modal has scheduled it."""
        tags: dict[str, str] = await self.calls.call("read Sandbox tags", sandbox.get_tags.aio)
        returncode = sandbox.returncode
        scheduled = False
        if returncode is None:
            scheduled = await self.calls.call("read Sandbox task", lambda: _scheduled(sandbox))
            if not scheduled:  # no task: not scheduled yet, or it has just finished
                returncode = await self.calls.call("poll Sandbox", sandbox.poll.aio)
        return machine_of(sandbox.object_id, tags, returncode, scheduled)

    async def status(self, session_id: str) -> Machine | None:
        sandbox = await self._find(session_id)
        return None if sandbox is None else await self.read(sandbox)

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def stop(self, session_id: str) -> bool:
        """Terminate: the bot's process ends (Modal shows it as return code 137) and nothing is kept.
        Tagged first (Modal's `set_tags` replaces the set), so the 137 reads as this stop, not a loss."""
        sandbox = await self._find(session_id)
        if sandbox is None:
            return False
        if sandbox.returncode is None:
            tags: dict[str, str] = await self.calls.call("read Sandbox tags", sandbox.get_tags.aio)
            await self.calls.call("tag a stopped Sandbox", lambda: sandbox.set_tags.aio({**tags, TAG_STOPPED: "1"}))
            await self.calls.call("terminate Sandbox", sandbox.terminate.aio)
        return True

    async def _read_all(self, sandboxes: list[Any], read: Callable[[Any], Awaitable[R]]) -> list[R]:
        limit = asyncio.Semaphore(_LIST_CONCURRENCY)

        async def one(sandbox: Any) -> R:
            async with limit:
                return await read(sandbox)

        return list(await asyncio.gather(*(one(s) for s in sandboxes)))

    async def list(self) -> list[Machine]:
        """The App's unfinished session Sandboxes: a finished one holds nothing to clean up."""
        return await self._read_all(await self._tagged({TAG_KIND: "session"}), self.read)

    async def aclose(self) -> None:
        await self.lost.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.wait_for(client.close.aio(), self.settings.timeout)
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: a Modal bot is told the channel's URL (`BOT_CHANNEL_URL`) in its Sandbox's
        environment at create, and its credential travels with each launch."""
