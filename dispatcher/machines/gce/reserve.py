"""Compute Engine with a warm reserve: idle VMs labelled idle, relabelled with the session on claim.

A reserve VM is inserted from the same template with no session values, named
`<GCE_INSTANCE_PREFIX>-idle-<bot id>` (so the launcher role's name-prefix condition covers it) and
labelled `voicefleet-idle=<bot id>`. Its bot dials the channel: the URL and the credential's
secret reference are the template's own metadata items (`bot-channel-url`, `bot-secrets`), which
every insert sends along, so the credential is read from Secret Manager at boot and never sits in
plain metadata; the VM's own values are `bot-machine-id` and `bot-image-digest`
(`GCE_RESERVE_METADATA`). A claim replaces the VM's labels with `instances.setLabels` (the idle
label dropped, the session's added) under the current `labelFingerprint`: a GET, then the write;
a stale fingerprint (412 `conditionNotMet`) is re-read once. The VM keeps its name, so look-ups by
session fall back to a label filter (labels.py `ClaimedVms`).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from botchannel.contract import CHANNEL_TOKEN_VARIABLE, IDENTITY_VARIABLE, IMAGE_VARIABLE, MACHINE_ID_VARIABLE
from dispatcher.machines.base import IdleMachine, LaunchResult, LaunchSpec, MachinesError
from dispatcher.machines.bot_environment import GCE_RESERVE_METADATA
from dispatcher.machines.gce.auth import GceAuth
from dispatcher.machines.gce.labels import IDLE_INFIX, LABEL_CLAIMED, LABEL_DIGEST, LABEL_SESSION, LABEL_TRANSPORT
from dispatcher.machines.gce.provider import GceMachines, GceSettings, to_machine
from dispatcher.outbound.ratelimit import Rate
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import CreateLimits

LABEL_IDLE = "voicefleet-idle"
_BOT_ID = re.compile(r"^[a-z0-9][-a-z0-9]{0,23}$")  # a label value, and short enough for a VM name


class GceWarmMachines(GceMachines):
    def __init__(self, settings: GceSettings, *, max_idle_seconds: float, max_session_seconds: int,
                 coordination: CreateLimits, auth: GceAuth | None = None, reports: str | None = None) -> None:
        """`auth`, `reports`: in a cell of several (gce/cell_reserve.py), the sign-in every cell's provider
        shares and what its idle bots report as their image (the deployment's template, the same in
        every cell; None: the one they are inserted from). `max_idle_seconds` (RESERVE_MAX_IDLE_SECONDS)
        and `max_session_seconds` bound a reserve VM's life: it may wait that long and then serve a
        whole session, so its maxRunDuration is their sum plus the grace. The template's own is sized
        for a cold session (max session + grace), and a VM claimed after idling longer than the grace
        would be deleted mid-session."""
        super().__init__(settings, coordination=coordination, auth=auth)
        self.max_run_seconds = int(max_idle_seconds) + max_session_seconds + settings.grace_seconds
        # The template names the image; a new image is a new template and a new dispatcher revision.
        self.bot_image = reports or settings.template_path

    @property
    def create_rate(self) -> Rate:
        return self.settings.insert_rate

    def idle_name(self, bot_id: str) -> str:
        if not _BOT_ID.match(bot_id):
            raise MachinesError("gce_rejected", f"reserve bot id {bot_id!r} is not a GCE label value ≤ 24 chars")
        return f"{self.settings.prefix}-{IDLE_INFIX}{bot_id}"  # ≤ 31 + 6 + 24 = 61 < 63

    def reported_image(self, image: str | None) -> str:
        """What an idle bot inserted from `image` (a release's template) says in its hello."""
        return image or self.bot_image

    def _idle_body(self, bot_id: str, template_items: list[dict[str, str]],
                   template_labels: dict[str, str], channel_token: str | None = None, *,
                   image: str | None = None, release: str = DEFAULT_RELEASE) -> dict[str, Any]:
        values = {MACHINE_ID_VARIABLE: bot_id, IMAGE_VARIABLE: self.reported_image(image),
                  CHANNEL_TOKEN_VARIABLE: channel_token or "", IDENTITY_VARIABLE: "gce" if channel_token else ""}
        own = {key: values[variable] for key, variable in GCE_RESERVE_METADATA.items()}
        return {
            "name": self.idle_name(bot_id),
            # The release label stays through a claim (which swaps the idle label for the session's).
            "labels": {**template_labels, LABEL_IDLE: bot_id, **self.release_label(release)},
            "metadata": {"items": [i for i in template_items if i["key"] not in own]
                         + [{"key": k, "value": v} for k, v in own.items()]},
            # Its own cap: idle time plus a session (see __init__), not the template's cold-session one.
            "scheduling": self.scheduling(self.max_run_seconds),
            **self.accelerators(),
        }

    async def launch_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                          release: str = DEFAULT_RELEASE) -> None:
        await self.creates.idle_turn()  # the token the reserve's refill took (dispatcher/machines/creates.py)
        await self.run_idle(bot_id, channel_token, image=image, release=release)

    async def run_idle(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                       release: str = DEFAULT_RELEASE) -> None:
        """The reserve VM's insert, its token already taken (in a cell: from the cells' buckets)."""
        template, of_release = self.template_of(image), (release if image is not None else None)
        template_items, template_labels = await self._template_parts(template, of_release)
        response = await self._request(
            "POST", "/instances", params={"sourceInstanceTemplate": template, "requestId": str(uuid.uuid4())},
            json=self._idle_body(bot_id, template_items, template_labels, channel_token, image=image, release=release),
        )
        if response.status_code != 200:
            raise self._template_refused(response, f"create reserve instance {self.idle_name(bot_id)}", of_release)

    async def _get_idle(self, bot_id: str) -> dict[str, Any] | None:
        name = self.idle_name(bot_id)
        response = await self._request("GET", f"/instances/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failed(response, f"get reserve instance {name}")
        return dict(response.json())

    async def holds_idle(self, bot_id: str) -> bool:
        """Whether this project runs `bot_id`'s reserve VM, still idle (a cell of several: gce/cell_reserve.py):
        its idle label names the bot, as the insert wrote it."""
        vm = await self._get_idle(bot_id)
        return vm is not None and (vm.get("labels") or {}).get(LABEL_IDLE) == bot_id

    async def adopt(self, bot_id: str, spec: LaunchSpec) -> LaunchResult:
        name = self.idle_name(bot_id)
        for attempt in range(2):  # a stale fingerprint (someone else wrote labels): re-read once
            vm = await self._get_idle(bot_id)
            if vm is None:
                raise MachinesError("reserve_bot_gone", f"reserve instance {name} is gone")
            current = dict(vm.get("labels") or {})
            if LABEL_SESSION in current or LABEL_IDLE not in current:
                raise MachinesError("reserve_bot_taken", f"reserve instance {name} already serves a session")
            labels = {k: v for k, v in current.items() if k != LABEL_IDLE} | {
                LABEL_SESSION: spec.session_id, LABEL_DIGEST: spec.body_digest,
                LABEL_CLAIMED: str(int(time.time())),  # the session's start, for the reaper
                **({LABEL_TRANSPORT: spec.transport} if spec.transport else {}),
            }
            response = await self._request("POST", f"/instances/{name}/setLabels",
                                           json={"labels": labels, "labelFingerprint": vm.get("labelFingerprint", "")})
            if response.status_code == 200:
                self._claimed.remember(spec.session_id, name)
                return LaunchResult(to_machine({**vm, "labels": labels}), created=True, claimed=True)
            if response.status_code != 412 or attempt == 1:
                raise self._failed(response, f"label reserve instance {name} with its session")
        raise AssertionError("unreachable")

    async def retire(self, bot_id: str) -> None:
        name = self.idle_name(bot_id)
        response = await self._request("DELETE", f"/instances/{name}")
        if response.status_code not in (200, 404):
            raise self._failed(response, f"delete reserve instance {name}")

    async def idle_machines(self) -> list[IdleMachine]:
        idle: list[IdleMachine] = []
        params = {"filter": f"labels.{LABEL_IDLE}:*", "maxResults": "500"}
        while True:
            response = await self._request("GET", "/instances", params=params)
            if response.status_code != 200:
                raise self._failed(response, "list reserve instances")
            page = response.json()
            for vm in page.get("items", []):
                labels = vm.get("labels") or {}
                machine = to_machine(vm)
                if LABEL_SESSION not in labels and machine.state.is_active:
                    idle.append(IdleMachine(labels[LABEL_IDLE], machine.created_at))
            if not page.get("nextPageToken"):
                return idle
            params = {**params, "pageToken": page["nextPageToken"]}

    def exit_detail(self, bot_id: str) -> str | None:
        """A cloud machine's exit is not seen here: a bot that never dialled in is only missing."""
        return None
