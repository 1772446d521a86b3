"""Fly Machines with a frozen reserve tier: idle machines suspended, resumed by a claim.

A suspended Machine keeps its memory in a snapshot and resumes "in a few hundred ms", billed for
storage, not CPU (https://fly.io/docs/reference/suspend-resume/): `POST …/suspend`, then
`/wait?state=suspended`; a resume is the ordinary `POST …/start`. Fly suspends only machines of at
most 2 GB, without swap or schedule. Where it cannot (`FLY_FROZEN_FORM=stop`, the default above
2 GB, or after Fly refused a suspend), idle machines are **stopped** instead: their disk is kept, a
start needs no create (Fly's scarce 1/s per app), the bot boots and imports again. A stopped
machine cannot carry `auto_destroy` (Fly destroys such a machine when it stops), so in that form
idle machines are created without it, and `stop` destroys a session's machine that has stopped.

Every call is bounded (the provider's HTTP timeout and retries; `/wait` up to its own deadline);
a machine that fails to freeze or thaw is destroyed before `FreezeFailed` is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dispatcher.machines.base import FreezeFailed, FrozenForm, MachinesError
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.fly.reserve import GONE_STATES, FlyWarmMachines
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.settings import SettingsError
from dispatcher.store.coordination import Coordination
from voicefleet_settings.model import ENUM
from voicefleet_settings.read import entry, setting_choice, setting_float

log = logging.getLogger("dispatcher.machines.fly")

SUSPEND_MAX_MEMORY_MB = 2048  # Fly's requirement for suspend
FREEZE_WAIT_SECONDS = 30  # a snapshot of ≤ 2 GB; `/wait` blocks at most 60 s
THAW_WAIT_SECONDS = 10  # a resume is "a few hundred ms"; a stopped machine boots "well under a second"
FORMS = entry("FLY_FROZEN_FORM", ENUM).choices
# Fly's per-second list (docs/reserve.md, bench/fly_cpu_quota.py): shared-cpu-4x with 1 GB while started
# (4 × $0.0000008/s, the default guest); a frozen bot
# counted as 2 GB of storage (root filesystem and memory snapshot) at $0.15 per GB-month.
DEFAULT_RUNNING_DOLLARS = 8.41
DEFAULT_FROZEN_DOLLARS = 0.30
RESUME_SECONDS = {"suspend": 0.4, "stop": 3.0}  # Fly's "few hundred ms"; a boot and the bot's imports


def frozen_form_setting(env: Mapping[str, str], settings: FlySettings) -> str:
    """FLY_FROZEN_FORM: suspend (the default where Fly allows it), stop, or off (no frozen tier)."""
    default = "suspend" if settings.memory_mb <= SUSPEND_MAX_MEMORY_MB else "stop"
    form = setting_choice(env, "FLY_FROZEN_FORM") or default  # its default follows the machine's memory
    if form == "suspend" and settings.memory_mb > SUSPEND_MAX_MEMORY_MB:
        raise SettingsError(f"FLY_FROZEN_FORM=suspend needs FLY_GUEST_MEMORY_MB ≤ {SUSPEND_MAX_MEMORY_MB}"
                            f" (Fly suspends no bigger machine); use stop or off")
    return form


class FlyFrozenMachines(FlyWarmMachines):
    def __init__(self, settings: FlySettings, coordination: Coordination, *, channel_url: str,
                 transport: str = "daily", form: str = "suspend", running_dollars: float = DEFAULT_RUNNING_DOLLARS,
                 frozen_dollars: float = DEFAULT_FROZEN_DOLLARS) -> None:
        super().__init__(settings, coordination, channel_url=channel_url, transport=transport)
        if form not in ("suspend", "stop"):
            raise ValueError(f"no frozen form {form!r}")
        self.form = form
        self._running_dollars = running_dollars
        self._frozen_dollars = frozen_dollars

    @classmethod
    def from_env(cls, env: Mapping[str, str], channel_url: str, coordination: Coordination,
                 transport: str = "daily") -> FlyWarmMachines:
        """The frozen tier FLY_FROZEN_FORM asks for; `off`: the warm reserve without one. Its idle bots
        serve `transport` (the deployment's default)."""
        settings = FlySettings.from_env(env)
        form = frozen_form_setting(env, settings)
        if form == "off":
            return FlyWarmMachines(settings, coordination, channel_url=channel_url, transport=transport)
        return cls(settings, coordination, channel_url=channel_url, transport=transport, form=form,
                   running_dollars=setting_float(env, "FLY_RUNNING_DOLLARS_PER_MONTH"),
                   frozen_dollars=setting_float(env, "FLY_FROZEN_DOLLARS_PER_MONTH"))

    def _gone_states(self) -> frozenset[str]:
        """A stopped idle machine is the stopped form's frozen tier, not a leftover."""
        return GONE_STATES - {"stopped"} if self.form == "stop" else GONE_STATES

    @property
    def frozen_form(self) -> FrozenForm:
        return FrozenForm("suspended" if self.form == "suspend" else "stopped", RESUME_SECONDS[self.form],
                          self._running_dollars, self._frozen_dollars)

    def _idle_body(self, bot_id: str, channel_token: str | None = None, *, image: str | None = None,
                   release: str = DEFAULT_RELEASE) -> dict[str, Any]:
        body = super()._idle_body(bot_id, channel_token, image=image, release=release)
        if self.form == "stop":  # Fly destroys an auto_destroy machine when it stops: the reserve does
            body["config"]["auto_destroy"] = False
        return body

    async def freeze(self, bot_id: str) -> None:
        machine_id = await self._idle_machine_id(bot_id)
        if machine_id is None:
            raise FreezeFailed("reserve_bot_gone", f"reserve machine {bot_id} is gone")
        try:
            if self.form == "suspend":
                response = await self._request("POST", f"/machines/{machine_id}/suspend")
                if response.status_code == 400:  # outside Fly's requirements: stop from now on
                    log.warning("Fly refused to suspend reserve machine %s (%s); the frozen tier stops "
                                "machines from now on", machine_id, response.text[:200])
                    self.form = "stop"
                    raise self._failed(response, "suspend a reserve machine")
                await self._expect_ok(response, "suspend a reserve machine")
                await self._wait(machine_id, "suspended", FREEZE_WAIT_SECONDS)
            else:
                instance = await self._instance_id(machine_id)
                await self._expect_ok(await self._request("POST", f"/machines/{machine_id}/stop"),
                                      "stop a reserve machine")
                await self._wait(machine_id, "stopped", FREEZE_WAIT_SECONDS, instance_id=instance)
        except MachinesError as exc:
            await self._destroy_after(bot_id, exc, "freeze")
            raise FreezeFailed(exc.reason, f"reserve machine {bot_id} was not frozen: {exc}") from exc

    async def thaw(self, bot_id: str) -> None:
        machine_id = await self._idle_machine_id(bot_id)
        if machine_id is None:
            raise FreezeFailed("reserve_bot_gone", f"reserve machine {bot_id} is gone")
        try:
            await self._expect_ok(await self._request("POST", f"/machines/{machine_id}/start"),
                                  "resume a reserve machine")
            await self._wait(machine_id, "started", THAW_WAIT_SECONDS)
        except MachinesError as exc:
            await self._destroy_after(bot_id, exc, "thaw")
            raise FreezeFailed(exc.reason, f"reserve machine {bot_id} was not thawed: {exc}") from exc

    async def stop(self, session_id: str) -> bool:
        """As every Fly machine's; a stopped machine of the stopped form (no `auto_destroy`) is
        destroyed: its one session is over."""
        stopped = await super().stop(session_id)
        machine_id = self._ids.get(session_id)
        if self.form == "stop" and machine_id is not None:
            got = await self._request("GET", f"/machines/{machine_id}")
            if got.status_code == 200 and got.json().get("state") == "stopped":
                await self._request("DELETE", f"/machines/{machine_id}")
        return stopped

    async def _expect_ok(self, response: Any, what: str) -> None:
        if response.status_code not in (200, 201, 202, 204):
            raise self._failed(response, what)

    async def _instance_id(self, machine_id: str) -> str:
        got = await self._request("GET", f"/machines/{machine_id}")
        if got.status_code != 200:
            raise self._failed(got, "get a reserve machine")
        return str(got.json().get("instance_id", ""))

    async def _wait(self, machine_id: str, state: str, seconds: int, *, instance_id: str | None = None) -> None:
        params = {"state": state, "timeout": str(seconds)}
        if instance_id:  # Fly requires it for `stopped`
            params["instance_id"] = instance_id
        response = await self._request("GET", f"/machines/{machine_id}/wait", params=params,
                                       timeout=self.settings.timeout + seconds)
        if response.status_code == 408:
            raise MachinesError("fly_wait_timeout", f"machine {machine_id} not {state} within {seconds} s")
        await self._expect_ok(response, f"wait for a machine to be {state}")

    async def _destroy_after(self, bot_id: str, exc: MachinesError, what: str) -> None:
        log.warning("reserve machine %s failed to %s (%s); destroying it", bot_id, what, exc)
        try:
            await self.retire(bot_id)
        except MachinesError as retire_error:  # the sweep and the reaper find it by its idle tag
            log.warning("destroying reserve machine %s failed too (%s)", bot_id, retire_error)
