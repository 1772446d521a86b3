"""Azure Container Instances with a warm reserve: idle container groups tagged idle, re-tagged with
the session on claim.

A reserve group is PUT like a session's, with no session values: named `<prefix>-idle-<bot id>`,
tagged `voicefleet-idle=<bot id>` and with its bot secrets' versions (`voicefleet-secrets`: a
claim refuses, and the sweep retires, a group of since-rotated keys), its secure values the
channel's URL, the bot id, the image and `BOT_CHANNEL_TOKEN` (the credential issued for this bot
id alone, never the deployment's secret) beside the deployment's bot keys. Its bot dials the
channel and waits; its hello is admitted while ARM shows the group (aci/identity.py). A claim is
ARM's tags-only update (`PATCH` of the group with `{"tags": …}`, which replaces the whole set and
leaves the running container alone): the idle tag dropped, the session's, its body digest,
transport and claim time added. ACI offers no condition on that write (no ETag), and needs none:
the bot accepts one assignment ever, so only one claim of a bot gets this far. The group keeps its
name, so a replica that did not claim it finds the session by its tag in one list of the resource
group's groups (`_find_claimed`), then goes by name. Creates and deletes of reserve groups draw on
ACI's create budget as a session's do; a group is claimed once and deleted after its session.
A retirement deletes a group only while it reads idle for its bot (or claimed here, by a claim that
failed after its re-tag). ARM has no conditional DELETE (a container group has no ETag, its DELETE
no `If-Match`), so the exclusive step is the bot's claim record in the store: a claim takes it before
it asks the bot, a retirement of a bot not held here before it reads (dispatcher/reserve/retirement.py).
A reserve group runs its release's image (`launch_idle`'s `image`, the deployment's own without
one), tagged `voicefleet-release`, which its claim keeps with the rest of its tags.
"""

from __future__ import annotations

import time
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.aci.groups import (
    TAG_CLAIMED,
    TAG_DIGEST,
    TAG_IDLE,
    TAG_RELEASE,
    TAG_SECRETS,
    TAG_SESSION,
    TAG_TRANSPORT,
    deleting,
    idle_name,
    ours,
    secrets_digest,
    to_machine,
)
from dispatcher.machines.aci.provider import AciMachines, turned_away
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import TRANSPORT
from dispatcher.outbound.ratelimit import Rate
from dispatcher.recent import Recent
from dispatcher.releases.names import DEFAULT_RELEASE


class AciWarmMachines(AciMachines):
    def __init__(self, *args: Any, transport: str = "daily", **kw: Any) -> None:
        super().__init__(*args, **kw)
        # Idle bots serve the deployment's first transport (a Daily bot cannot take a WebRTC
        # session): its image (ACI_BOT_IMAGE_WEBRTC for webrtc), which a hello must name.
        self.transport = transport
        self.bot_image = self.settings.image_for(transport)
        self._exits: Recent[str, str] = Recent(1000)  # bot id → why its idle group ended, as last listed
        self._adopted: Recent[str, str] = Recent(1000)  # bot id → the session this replica's claim re-tags it for

    @property
    def create_rate(self) -> Rate:
        return self.settings.create_rate

    def reported_image(self, image: str | None) -> str:
        """What an idle bot launched with `image` says in its hello: that image."""
        return image or self.bot_image

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.creates.idle_turn()  # the token the reserve's refill took (dispatcher/machines/creates.py)
        await self.run_idle(bot_id, channel_token, image=image, release=release)

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The reserve group's PUT, its token already taken (in a cell of several: from the cells'
        buckets, aci/cell_reserve.py). In a cell, a 429 or a quota that made nothing raises
        `CellTurnedAway` at once, never retried where it throttles: the cell is drained."""
        name = idle_name(self.settings, bot_id)
        values = {MACHINE_ID_VARIABLE: bot_id, TRANSPORT: self.transport}
        if channel_token is not None:  # this bot's own credential (the deployment secret stays here)
            values[CHANNEL_TOKEN_VARIABLE] = channel_token
        secrets = await self._bot_secrets.values() if self._bot_secrets is not None else {}
        env = {**secrets, **self.launch_env(values, self.reported_image(image))}
        tags = {TAG_IDLE: bot_id, TAG_SECRETS: secrets_digest(self.settings), TAG_RELEASE: release}
        in_cell = self.cell is not None
        response = await self._create(name, env, tags, self.reported_image(image), turn_away=in_cell)
        if in_cell and (turned := turned_away(response)) is not None:
            raise turned
        if response.status_code not in (200, 201):
            raise self._create_failed(response, f"create reserve container group {name}", image, release)

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this resource group runs `bot_id`'s reserve group, still idle (a cell of several:
        aci/cell_reserve.py): this deployment's, its idle tag naming the bot, as the PUT wrote it."""
        group = await self._get(idle_name(self.settings, bot_id))
        if group is None or not ours(self.settings, group):
            return False
        tags = group.get("tags") or {}
        return tags.get(TAG_IDLE) == bot_id and TAG_SESSION not in tags

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        name = idle_name(self.settings, bot_id)
        group = await self._get(name)
        if group is None or not to_machine(group).state.is_active:
            raise MachinesError("reserve_bot_gone", f"reserve container group {name} is gone or has ended")
        current = dict(group.get("tags") or {})
        if TAG_SESSION in current or current.get(TAG_IDLE) != bot_id:
            raise MachinesError("reserve_bot_taken", f"reserve container group {name} already serves a session")
        if current.get(TAG_SECRETS) != secrets_digest(self.settings):
            raise MachinesError("reserve_bot_stale", f"reserve container group {name} holds rotated-out bot secrets")
        tags = {k: v for k, v in current.items() if k != TAG_IDLE} | {
            TAG_SESSION: spec.session_id, TAG_DIGEST: spec.body_digest,
            TAG_CLAIMED: str(int(time.time())),  # the session's start, for the reaper
            **({TAG_TRANSPORT: spec.transport} if spec.transport else {}),
        }
        self._adopted[bot_id] = spec.session_id  # before the PATCH: one whose answer is lost may have landed
        response = await self._request("PATCH", f"/{name}", json={"tags": tags})
        if response.status_code == 404:
            raise MachinesError("reserve_bot_gone", f"reserve container group {name} is gone")
        if response.status_code != 200:
            raise self._failed(response, f"tag reserve container group {name} with its session")
        self._claimed[spec.session_id] = name
        return LaunchResult(to_machine(response.json()), created=True, claimed=True)

    async def retire(self, bot_id: str) -> None:
        """Deletes the bot's group only while it is idle for this bot, or carries the session this
        replica's own claim gave it (a claim that failed after its re-tag): a retirement decided on an
        older listing never reaches a session another replica claimed it for. Gone or Deleting: a
        no-op. ARM offers no delete conditional on the group as read (no ETag): a claim between this
        read and the delete is kept out by the bot's claim record, which a retirement at a replica
        not holding the bot takes first (dispatcher/reserve/retirement.py)."""
        name = idle_name(self.settings, bot_id)
        group = await self._get(name)
        if group is None or deleting(group) or not self._retirable(bot_id, group):
            return
        await self._delete(name)
        self._adopted.pop(bot_id, None)

    def _retirable(self, bot_id: str, group: dict[str, Any]) -> bool:
        """This deployment's, and idle for this bot or claimed here for the session its tags name."""
        tags = group.get("tags") or {}
        if not ours(self.settings, group):
            return False
        if tags.get(TAG_IDLE) == bot_id and TAG_SESSION not in tags:
            return True
        claimed = self._adopted.get(bot_id)
        return claimed is not None and tags.get(TAG_SESSION) == claimed

    async def idle_machines(self) -> list[IdleMachine]:
        """Idle groups, ended ones too: a Terminated group keeps its quota slot until deleted, and
        the sweep deletes it (from a dispatcher that died, no one else would)."""
        prefix = f"{self.settings.prefix}-idle-"
        idle: list[IdleMachine] = []
        for group in await self._pages():
            tags = group.get("tags") or {}
            if (not str(group.get("name", "")).startswith(prefix) or not ours(self.settings, group)
                    or TAG_SESSION in tags or TAG_IDLE not in tags or deleting(group)):
                continue  # a Deleting group was retired already: neither idle nor the sweep's to delete
            machine = to_machine(group)
            if not machine.state.is_active and machine.detail:
                self._exits[tags[TAG_IDLE]] = machine.detail
            # Launched with since-rotated bot secrets: listed as created at the epoch, so the sweep
            # retires it at once (as a bot of an old image is), and adopt() refuses it meanwhile.
            stale = tags.get(TAG_SECRETS) != secrets_digest(self.settings)
            idle.append(IdleMachine(tags[TAG_IDLE], 0.0 if stale else machine.created_at))
        return idle

    async def _find_claimed(self, session_id: str) -> dict[str, Any] | None:
        """This deployment's claimed reserve group tagged with the session (one list), or None."""
        prefix = f"{self.settings.prefix}-idle-"
        for group in await self._pages():
            tags = group.get("tags") or {}
            if (tags.get(TAG_SESSION) == session_id and TAG_CLAIMED in tags and ours(self.settings, group)
                    and str(group.get("name", "")).startswith(prefix)):
                self._claimed[session_id] = str(group["name"])
                return group
        return None

    def exit_detail(self, bot_id: str) -> str | None:
        """The exit code of an idle group that ended before its bot said hello, as the last list saw it."""
        return self._exits.get(bot_id)
