"""Fly Machines with a warm reserve: idle machines tagged in their metadata, re-tagged on claim.

A reserve machine is created with no session values, named `vf-idle-<bot id>` and tagged
`voicefleet_idle=<bot id>`; its bot dials `BOT_CHANNEL_URL` (the dispatcher's private address)
with `BOT_CHANNEL_TOKEN` from its machine config: the credential issued for this bot id alone
(dispatcher/channel/credentials.py), never the deployment secret, which no bot app holds. Its
`BOT_TRANSPORT` is the deployment's default transport (the first of `TRANSPORTS`): the one it serves.
A claim re-tags the machine with three metadata writes (`POST /machines/{id}/metadata/{key}`,
`{"value": …}`, as flyctl's client does): the body digest and the claim time first, the session id
last, so a look-up by session never finds a half-tagged machine. Three writes fit Fly's limit of
1 request/s per action per machine with a burst of 3; creates stay the app-wide 1/s they were.
A reserve machine runs the image of the release it was launched for (`launch_idle`'s `image`,
the deployment's own without one), tagged `voicefleet_release` at its create: a claim writes no
fourth key, the machine keeps the release it was created with, suspended or stopped too.
"""

from __future__ import annotations

import random
import time
from typing import Any

from botchannel.contract import (
    CHANNEL_TOKEN_VARIABLE,
    CHANNEL_URL_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
)
from dispatcher.channel.credentials import BotGrant
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import TRANSPORT
from dispatcher.machines.fly.provider import (
    IDLE_NAME_PREFIX,
    META_CREATED,
    META_DIGEST,
    META_RELEASE,
    META_SESSION,
    FlyMachines,
    FlySettings,
    to_machine,
)
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import Coordination

META_IDLE = "voicefleet_idle"
CLAIMED_KEPT = 100_000  # claimed bots whose machine id stays pinned for their re-dials (oldest forgotten)
# Idle machines in these states are no reserve (an `auto_destroy` machine that stopped is on its way out).
GONE_STATES: frozenset[str] = frozenset({"destroyed", "destroying", "stopped"})
FROZEN_STATES: frozenset[str] = frozenset({"suspending", "suspended", "stopping", "stopped"})


class FlyWarmMachines(FlyMachines):
    def __init__(self, settings: FlySettings, coordination: Coordination, *, channel_url: str,
                 transport: str = "daily") -> None:
        super().__init__(settings, coordination)
        self.channel_url = channel_url
        self.bot_image = settings.image
        # Idle bots serve the deployment's default transport (a Daily bot cannot take a WebRTC session).
        self.transport = transport
        # bot id → Fly machine id: launched by this replica, or proved by the bot's hello here
        self._idle_ids: Recent[str, str] = Recent()
        # bot id → Fly machine id of the bots claimed here: a claimed bot re-dials with its idle
        # credential for its whole session, and a machine of its name in another app must stay refused.
        self._claimed_ids: Recent[str, str] = Recent(CLAIMED_KEPT)

    def known_id(self, grant: BotGrant) -> str | None:
        if grant.kind == "idle":
            return self._idle_ids.get(grant.subject) or self._claimed_ids.get(grant.subject)
        return super().known_id(grant)

    def verified(self, grant: BotGrant, machine_id: str, app: str) -> None:
        """A reserve bot's hello proved its machine: a claim, freeze, resume or retirement here needs
        no list of every app to find it (in a burst, those lists, 1/s per app, made claims of bots
        another replica launched wait seconds or go cold)."""
        super().verified(grant, machine_id, app)
        if grant.kind == "idle" and grant.subject not in self._claimed_ids:
            self._idle_ids.setdefault(grant.subject, machine_id)

    @property
    def create_rate(self) -> Rate:
        return self.settings.create_rate

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched with `image` says in its hello: that image."""
        return image or self.bot_image

    def _idle_body(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                   release: str = DEFAULT_RELEASE) -> dict[str, Any]:
        s = self.settings
        env = {CHANNEL_URL_VARIABLE: self.channel_url, MACHINE_ID_VARIABLE: bot_id,
               IMAGE_VARIABLE: self.reported_image(image), TRANSPORT: self.transport}
        if channel_token is not None:  # this bot's own credential (the deployment secret stays here)
            env[CHANNEL_TOKEN_VARIABLE] = channel_token
            env[IDENTITY_VARIABLE] = "fly"  # and its hello must carry its Machine's OIDC token
        body: dict[str, Any] = {
            "name": IDLE_NAME_PREFIX + bot_id,
            "config": {
                "image": image or s.image,
                "env": env,
                "guest": {"cpu_kind": s.cpu_kind, "cpus": s.cpus, "memory_mb": s.memory_mb},
                "auto_destroy": True,  # the bot exits with its one session (or when retired): gone
                "restart": {"policy": "no"},
                "metadata": {META_IDLE: bot_id, META_CREATED: str(int(time.time())), META_RELEASE: release},
            },
        }
        if s.region:
            body["region"] = s.region
        return body

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        """In the app whose create token the reserve's refill took (`Creates.refill`) just before;
        called otherwise, it waits for a token as a cold launch does."""
        app = await self.creates.idle_turn()
        body = self._idle_body(bot_id, channel_token, image=image, release=release)
        response = await self._request("POST", "/machines", app=app, json=body,
                                       before_retry=self.create_retry_turn(app, refill=True))
        if response.status_code not in (200, 201):
            raise self._create_failed(response, "create a reserve machine", image, release)
        self._idle_ids[bot_id] = self._seen(response.json(), app).machine_id

    async def _idle_machine_id(self, bot_id: str) -> str | None:
        machine_id = self._idle_ids.get(bot_id)
        if machine_id is not None:
            return machine_id
        # Another replica launched it, in one of the apps: ask them one at a time, in an order of
        # their own (each app's lists are limited apart), until one holds it.
        for app in random.sample(self.creates.apps, len(self.creates.apps)):
            for machine in await self._list_in(app, {f"metadata.{META_IDLE}": bot_id}):
                claimed = META_SESSION in machine["config"]["metadata"]
                if machine.get("state") not in self._gone_states() and not claimed:
                    return str(machine["id"])
        return None

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        machine_id = await self._idle_machine_id(bot_id)
        if machine_id is None:
            raise MachinesError("reserve_bot_gone", f"reserve machine {bot_id} is gone")
        for key, value in ((META_DIGEST, spec.body_digest), (META_CREATED, str(int(time.time()))),
                           (META_SESSION, spec.session_id)):
            response = await self._request("POST", f"/machines/{machine_id}/metadata/{key}", json={"value": value})
            if response.status_code not in (200, 201, 204):
                raise self._failed(response, "tag a claimed reserve machine")
        self._idle_ids.pop(bot_id, None)
        self._claimed_ids[bot_id] = machine_id
        self._ids[spec.session_id] = machine_id
        got = await self._request("GET", f"/machines/{machine_id}")
        if got.status_code != 200:
            raise self._failed(got, "get a claimed reserve machine")
        return LaunchResult(to_machine(got.json()), created=True, claimed=True)

    async def retire(self, bot_id: str) -> None:
        machine_id = await self._idle_machine_id(bot_id)
        self._idle_ids.pop(bot_id, None)
        if machine_id is None:
            return
        response = await self._request("DELETE", f"/machines/{machine_id}", params={"force": "true"})
        if response.status_code not in (200, 202, 204, 404):
            raise self._failed(response, "destroy a reserve machine")

    async def _list_idle(self) -> list[dict[str, Any]]:
        return [m for m in await self._list_all()
                if META_IDLE in ((m.get("config") or {}).get("metadata") or {})
                and META_SESSION not in m["config"]["metadata"]
                and m.get("state") not in self._gone_states()]

    def _gone_states(self) -> frozenset[str]:
        return GONE_STATES

    async def idle_machines(self) -> list[IdleMachine]:
        return [IdleMachine(m["config"]["metadata"][META_IDLE], to_machine(m).created_at,
                            frozen=m.get("state") in FROZEN_STATES)
                for m in await self._list_idle()]

    def exit_detail(self, bot_id: str) -> str | None:
        """A cloud machine's exit is not seen here: a bot that never dialled in is only missing."""
        return None
