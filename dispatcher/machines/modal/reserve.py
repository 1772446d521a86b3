"""Modal with a warm reserve: idle Sandboxes tagged idle, re-tagged with the session on claim.

A reserve Sandbox is created from the same image with no session values, named `vf-idle-<bot id>`
and tagged `voicefleet=idle`, `voicefleet_idle=<bot id>`; its bot dials `BOT_CHANNEL_URL` with
`BOT_CHANNEL_TOKEN`, the credential issued for this bot id alone, both in its ephemeral Secret with
`BOT_TRANSPORT`, the deployment's default transport (the first of `TRANSPORTS`), which it serves. Its
`timeout` covers the longest idle wait plus a whole session (at most Modal's 24 h). A claim replaces
the Sandbox's tags in one `set_tags` (Modal's replaces the whole set): `voicefleet=session` and the
session's tags, so `status`/`stop`/`list` find it by tag like any session's Sandbox; its release's
tag (`voicefleet_release`, written at its create with the release's image) is carried over.
"""

from __future__ import annotations

import time
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import TRANSPORT
from dispatcher.machines.modal.provider import (
    IDLE_PREFIX,
    TAG_CREATED,
    TAG_DIGEST,
    TAG_KIND,
    TAG_RELEASE,
    TAG_SESSION,
    TAG_TRANSPORT,
    ModalMachines,
    machine_of,
)
from dispatcher.machines.modal.settings import MAX_TIMEOUT_SECONDS, ModalSettings
from dispatcher.outbound.ratelimit import Rate
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import CreateLimits

TAG_IDLE = "voicefleet_idle"


class ModalWarmMachines(ModalMachines):
    def __init__(self, settings: ModalSettings, *, coordination: CreateLimits, channel_url: str,
                 max_idle_seconds: float, max_session_seconds: int, transport: str = "daily") -> None:
        super().__init__(settings, coordination=coordination, channel_url=channel_url)
        self.bot_image = settings.image_id
        # Idle bots serve the deployment's default transport (a Daily bot cannot take a WebRTC session).
        self.transport = transport
        self.idle_timeout = min(int(max_idle_seconds) + max_session_seconds + settings.grace_seconds,
                                MAX_TIMEOUT_SECONDS)

    @property
    def create_rate(self) -> Rate:
        return self.settings.create_rate

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched with `image` says in its hello: that image id."""
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.creates.idle_turn()  # the token the reserve's refill took (dispatcher/machines/creates.py)
        env = {MACHINE_ID_VARIABLE: bot_id, IMAGE_VARIABLE: self.reported_image(image), TRANSPORT: self.transport}
        if channel_token is not None:  # this bot's own credential (the deployment secret stays here)
            env[CHANNEL_TOKEN_VARIABLE] = channel_token
        tags = {TAG_KIND: "idle", TAG_IDLE: bot_id, TAG_CREATED: str(int(time.time())), TAG_RELEASE: release}
        await self._create(IDLE_PREFIX + bot_id, tags, env, self.idle_timeout, image_id=image, release=release)

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        name = IDLE_PREFIX + bot_id
        sandbox = await self._by_name(name)
        if sandbox is None or sandbox.returncode is not None:
            raise MachinesError("reserve_bot_gone", f"reserve Sandbox {name} is gone")
        current: dict[str, str] = await self.calls.call("read Sandbox tags", sandbox.get_tags.aio)
        if current.get(TAG_KIND) != "idle" or TAG_SESSION in current:
            raise MachinesError("reserve_bot_taken", f"reserve Sandbox {name} already serves a session")
        tags = {TAG_KIND: "session", TAG_IDLE: bot_id, TAG_SESSION: spec.session_id, TAG_DIGEST: spec.body_digest,
                TAG_CREATED: str(int(time.time())),  # the session's start, for the reaper
                **({TAG_RELEASE: current[TAG_RELEASE]} if TAG_RELEASE in current else {}),  # what it runs
                **({TAG_TRANSPORT: spec.transport} if spec.transport else {})}
        await self.calls.call("tag a claimed reserve Sandbox", lambda: sandbox.set_tags.aio(tags))
        return LaunchResult(machine_of(sandbox.object_id, tags, None, scheduled=True), created=True, claimed=True)

    async def retire(self, bot_id: str) -> None:
        sandbox = await self._by_name(IDLE_PREFIX + bot_id)
        if sandbox is not None and sandbox.returncode is None:
            await self.calls.call("terminate a reserve Sandbox", sandbox.terminate.aio)

    async def idle_machines(self) -> list[IdleMachine]:
        read = await self._read_all(await self._tagged({TAG_KIND: "idle"}), self._read_idle)
        return [m for m in read if m is not None]

    async def _read_idle(self, sandbox: Any) -> IdleMachine | None:
        tags: dict[str, str] = await self.calls.call("read Sandbox tags", sandbox.get_tags.aio)
        if tags.get(TAG_KIND) != "idle" or TAG_IDLE not in tags:  # claimed since it was listed
            return None
        created = tags.get(TAG_CREATED, "")
        return IdleMachine(tags[TAG_IDLE], float(created) if created.isdigit() else 0.0)

    def exit_detail(self, bot_id: str) -> str | None:
        """A Sandbox's exit is not seen here: a bot that never dialled in is only missing."""
        return None
