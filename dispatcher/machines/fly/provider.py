"""`MACHINES=fly`: one Fly Machine per session (https://fly.io/docs/machines/api/machines-resource/).

Idempotency: the machine `name` is derived from the session id, so a second create gets 409 and
we look the existing machine up by metadata instead (Fly has no server-side idempotency key).
The machine destroys itself when the bot exits (`auto_destroy`, restart policy `no`). The session's
values, the Daily token among them, travel in `config.env`, never in `init.cmd`.

Creates are app-wide and scarce (1/s, burst 3): every create takes its token from the
deployment's one count of that app's limit (`Coordination.create_limit`, in the store with several
replicas), never from a bucket of this replica's own, so N replicas still create at 1/s per app. A
cold launch waits for its token up to `FLY_CREATE_MAX_WAIT`, else it is refused
(`fly_rate_limited`, with the wait as `retry_after`); the reserve takes its refills' tokens from
the same count. `FLY_APPS` spreads creates over several apps (dispatcher/machines/fly/creates.py
says how); every other call goes to the app that holds the machine.

Lists are app-wide too (1/s, burst 3) and counted the same way, once for the deployment
(`fly-list:<app>`): a list waits for its app's token up to `FLY_LIST_MAX_WAIT`, else it is refused
`fly_rate_limited`, so several replicas together never list an app faster than Fly answers.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botchannel.contract import IDENTITY_VARIABLE
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.credentials import BotGrant
from dispatcher.channel.identity import identity_audience
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState, WaitTimeout
from dispatcher.machines.bot_environment import bot_environment
from dispatcher.machines.creates import Creates
from dispatcher.machines.fly.creates import app_cells
from dispatcher.machines.fly.identity import DEFAULT_ISSUER as DEFAULT_OIDC_ISSUER
from dispatcher.machines.fly.identity import FlyMachineIdentity
from dispatcher.machines.lost_creates import LostCreates, found_after_conflict
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.ratelimit import Rate
from dispatcher.outbound.retry import Backoff, provider_request
from dispatcher.recent import Recent
from dispatcher.settings import SettingsError, require
from dispatcher.store.coordination import Coordination
from voicefleet_settings.read import setting_choice, setting_float, setting_int, setting_text

DEFAULT_API_HOST = "https://api.machines.dev"
# https://fly.io/docs/machines/api/working-with-machines-api/#rate-limits: 1 req/s per action per
# app (burst 3) for create and list; per-machine actions (get 5/s, wait, stop) are not app-wide.
DEFAULT_CREATE_RATE = Rate(per_second=1, burst=3, max_wait=3.0)
DEFAULT_LIST_RATE = Rate(per_second=1, burst=3, max_wait=3.0)
WAIT_MAX = 60  # the documented maximum of `/wait?timeout=`
# `/wait` takes one state and answers only when it is reached or its timeout passes: a machine that
# fails, stops or is destroyed instead is never `started`, and one long wait would hold the start for
# its whole timeout. The first wait is this long (whole seconds), followed by a state read, so a
# machine that fails at boot is noticed within it; later waits double (docs/providers.md).
WAIT_SLICE = 2
LAUNCHED_KEPT = 1024
NAME_PREFIX = "vf-"
IDLE_NAME_PREFIX = "vf-idle-"  # reserve machines: named by bot id, tagged with a session when claimed
META_SESSION, META_DIGEST, META_CREATED = "voicefleet_session", "voicefleet_body_digest", "voicefleet_created_at"
META_TRANSPORT = "voicefleet_transport"  # "daily" or "webrtc" (absent: daily)
# The release the machine runs, written at create (a claimed reserve machine keeps its idle one: Fly's
# per-machine limit of 3 metadata writes in a burst is the claim's, fly/reserve.py).
META_RELEASE = "voicefleet_release"

_APP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_STARTING = {"created", "creating", "starting", "updating", "replacing"}
_ENDED = {"stopping", "stopped", "suspending", "suspended", "destroying", "destroyed", "replaced", "migrated"}
_FAILED = {"failed", "launch_failed"}


@dataclass(frozen=True)
class FlySettings:
    api_token: str = field(repr=False)
    app: str
    image: str
    # Every app creates may go to, FLY_APP first (FLY_APPS; empty: FLY_APP's alone): ~1 create/s each.
    apps: tuple[str, ...] = ()
    api_host: str = DEFAULT_API_HOST
    # shared-cpu-4x: four shared vCPUs may run 25 % of a core, past a talking bot's 18-20 %; shared-cpu-1x's
    # 6.25 % is spent within a minute of a call and the bot falls silent (docs/providers.md, "CPU").
    cpu_kind: str = "shared"
    cpus: int = 4
    memory_mb: int = 1024
    region: str | None = None
    timeout: float = 10.0  # per HTTP call (a `/wait` call gets its own wait time on top)
    retry_deadline: float = 10.0
    create_rate: Rate = DEFAULT_CREATE_RATE
    list_rate: Rate = DEFAULT_LIST_RATE
    # Bots' Machine OIDC tokens (fly/identity.py): the org's issuer (FLY_ORG, or FLY_OIDC_ISSUER),
    # where its keys are, and the audience they name (BOT_IDENTITY_AUDIENCE, else BOT_CHANNEL_URL).
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    identity_audience: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FlySettings:
        required = require(env, ("FLY_API_TOKEN", "FLY_APP", "BOT_IMAGE"), "fly")
        cpu_kind = setting_choice(env, "FLY_GUEST_CPU_KIND")
        memory = setting_int(env, "FLY_GUEST_MEMORY_MB")
        if memory % 256:
            raise SettingsError(f"FLY_GUEST_MEMORY_MB={memory} must be a multiple of 256")
        cpus = setting_int(env, "FLY_GUEST_CPUS")
        # Fly's sizes (fly.io/docs/machines/guides-examples/machine-sizing): at least 256 MB per shared
        # vCPU and 2048 MB per performance vCPU, or the create is refused.
        least = cpus * (256 if cpu_kind == "shared" else 2048)
        if memory < least:
            raise SettingsError(f"FLY_GUEST_MEMORY_MB={memory} is below Fly's least for {cpus} {cpu_kind} vCPU(s), "
                                f"{least}: set FLY_GUEST_MEMORY_MB={least} or more")
        return cls(
            api_token=required["FLY_API_TOKEN"],
            app=required["FLY_APP"],
            image=required["BOT_IMAGE"],
            apps=_apps(env, required["FLY_APP"]),
            api_host=(setting_text(env, "FLY_API_HOST")).rstrip("/"),
            cpu_kind=cpu_kind,
            cpus=cpus,
            memory_mb=memory,
            region=setting_text(env, "FLY_REGION") or None,
            timeout=setting_float(env, "FLY_TIMEOUT_SECONDS"),
            retry_deadline=setting_float(env, "FLY_RETRY_DEADLINE_SECONDS"),
            create_rate=Rate.from_env(env, "FLY_CREATE"),
            list_rate=Rate.from_env(env, "FLY_LIST"),
            oidc_issuer=_oidc_issuer(env),
            oidc_jwks_url=setting_text(env, "FLY_OIDC_JWKS_URL") or None,
            identity_audience=identity_audience(env),
        )


def _apps(env: Mapping[str, str], app: str) -> tuple[str, ...]:
    """FLY_APP, then FLY_APPS (comma-separated) without repeats; empty when FLY_APPS is unset (FLY_APP's alone)."""
    listed = tuple(a.strip() for a in setting_text(env, "FLY_APPS").split(",") if a.strip())
    if bad := [a for a in listed if not _APP_NAME.fullmatch(a)]:
        raise SettingsError(f"FLY_APPS: {bad[0][:64]!r} is not a Fly app name")
    return tuple(dict.fromkeys((app, *listed))) if listed else ()


def _oidc_issuer(env: Mapping[str, str]) -> str | None:
    if issuer := setting_text(env, "FLY_OIDC_ISSUER").rstrip("/"):
        return issuer
    org = setting_text(env, "FLY_ORG")
    return f"{DEFAULT_OIDC_ISSUER}/{org}" if org else None


def machine_name(session_id: str) -> str:
    return f"{NAME_PREFIX}{session_id}"


def _exit_code(raw: Mapping[str, Any]) -> int | None:
    """The bot's exit code from the newest `exit` event, if Fly reported one."""
    exits = [e for e in raw.get("events") or [] if e.get("type") == "exit"]
    if not exits:
        return None
    newest = max(exits, key=lambda e: e.get("timestamp") or 0)
    code = ((newest.get("request") or {}).get("exit_event") or {}).get("exit_code")
    return int(code) if code is not None else None


def _created_at(raw: Mapping[str, Any], metadata: Mapping[str, str]) -> float:
    try:
        return float(metadata[META_CREATED])
    except (KeyError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(raw.get("created_at")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def to_machine(raw: Mapping[str, Any]) -> Machine:
    metadata = (raw.get("config") or {}).get("metadata") or {}
    fly_state = str(raw.get("state", ""))
    code = _exit_code(raw)
    detail = None
    if fly_state in _STARTING:
        state = MachineState.STARTING
    elif fly_state == "started":
        state = MachineState.STARTED
    elif fly_state in _FAILED:
        state, detail = MachineState.FAILED, f"fly state {fly_state}"
    elif code:
        state, detail = MachineState.FAILED, f"exit code {code}"
    elif fly_state in _ENDED:
        state = MachineState.ENDED
    else:  # a state Fly added after this was written: say so rather than guess
        state, detail = MachineState.STARTING, f"unknown fly state {fly_state}"
    return Machine(
        session_id=metadata.get(META_SESSION, ""),
        machine_id=str(raw["id"]),
        state=state,
        created_at=_created_at(raw, metadata),
        body_digest=metadata.get(META_DIGEST),
        detail=detail,
        transport=metadata.get(META_TRANSPORT),
        release=metadata.get(META_RELEASE),
    )


def image_refused(response: HttpResponse, image: str) -> str | None:
    """Fly's words when a create was refused for its image (a registry without it), else None. Fly
    documents no code for it: a 4xx whose message names the image or its manifest."""
    if response.status_code not in (400, 404, 422):
        return None
    try:
        said = str(response.json().get("error"))
    except (ValueError, AttributeError):
        said = response.text[:300]
    return said if image in said or re.search(r"\b(image|manifest)\b", said, re.IGNORECASE) else None


class FlyMachines:
    name = "fly"

    def __init__(self, settings: FlySettings, coordination: Coordination) -> None:
        self.settings = settings
        apps = settings.apps or (settings.app,)
        self._clients = {app: HttpClient(f"{settings.api_host}/v1/apps/{app}",
                                         headers={"Authorization": f"Bearer {settings.api_token}"},
                                         timeout=settings.timeout) for app in apps}
        self._app_of: Recent[str, str] = Recent()  # Fly machine id → its app, as created or listed here
        self._backoff = Backoff(attempts=5, base=0.3, cap=3.0, deadline=settings.retry_deadline)
        self.cells = app_cells(apps, coordination, settings.create_rate)
        self.creates = self.cells.creates  # the reserve's refills take their tokens from the same buckets
        self.lost = LostCreates(self.status, self.stop)  # a create whose answer was lost, reconciled
        # Lists are app-wide at Fly (1/s, burst 3): each app's counted once for the deployment, as creates are.
        self.lists = Creates("fly", coordination, settings.list_rate, groups=apps, action="list")
        # session id -> machine id: ids never change, so this only saves the (app-wide, 1 req/s)
        # list call; a replica without the entry finds the machine by metadata.
        self._ids: Recent[str, str] = Recent()
        # Machines launched here and not yet waited on (`?wait=started` follows its launch at
        # once): oldest first, bounded, so starts that never wait cannot grow it.
        self._launched: Recent[str, Machine] = Recent(LAUNCHED_KEPT)
        # A bot's hello must carry its Machine's OIDC token: its launch credential alone, readable
        # in the machine's config, admits nothing (docs/security.md).
        self.identity = FlyMachineIdentity(
            issuer=settings.oidc_issuer, apps=apps, audience=settings.identity_audience,
            jwks_url=settings.oidc_jwks_url, names=self.name_for, known_id=self.known_id, known_app=self.known_app,
            verified=self.verified,
        )

    @staticmethod
    def name_for(grant: BotGrant) -> str:
        """The machine name created for a credential's session or reserve bot id."""
        return IDLE_NAME_PREFIX + grant.subject if grant.kind == "idle" else machine_name(grant.subject)

    def known_id(self, grant: BotGrant) -> str | None:
        """The Fly machine id this replica created for the credential's subject, if it did."""
        return self._ids.get(grant.subject) if grant.kind == "session" else None

    def known_app(self, grant: BotGrant) -> str | None:
        """The app of the machine created for the credential's subject: a session's is the app its id
        maps to, the same at every replica (names are unique only within an app, so a machine of that
        name in another of the deployment's apps is not the session's); a reserve bot's, where this
        replica created it."""
        if grant.kind == "session":
            return self.creates.app_of(grant.subject)
        machine_id = self.known_id(grant)
        return None if machine_id is None else self._app_of.get(machine_id)

    def verified(self, grant: BotGrant, machine_id: str, app: str) -> None:
        """A hello proved (by its Machine's OIDC token) that the grant's machine is `machine_id` in
        `app`: later calls about it go there, and a session's machine needs no list to be found."""
        self._app_of[machine_id] = app
        if grant.kind == "session":
            self._ids.setdefault(grant.subject, machine_id)

    async def _request(self, method: str, path: str, *, app: str | None = None, backoff: Backoff | None = None,
                       **kw: Any) -> HttpResponse:
        """A call to `app`'s Machines API; without one, to the app holding the machine the path names
        (`/machines/<id>…`), as created or listed here (FLY_APP's otherwise). `backoff`: its retries,
        where not the provider's (a wait's, bounded by the wait's own deadline)."""
        if app is None:
            parts = path.split("/")
            app = self._app_of.get(parts[2], self.settings.app) if len(parts) > 2 else self.settings.app
        return await provider_request(
            "fly", self._clients[app], method, path, backoff=backoff or self._backoff, error=MachinesError, **kw)

    def _seen(self, raw: Mapping[str, Any], app: str) -> Machine:
        """A machine as Fly answered it from `app`: later calls about it go to that app."""
        self._app_of[str(raw["id"])] = app
        return to_machine(raw)

    def _failed(self, response: HttpResponse, what: str) -> MachinesError:
        try:
            message = str(response.json().get("error"))
        except (ValueError, AttributeError):
            message = response.text[:200]
        status = response.status_code
        return refusal(MachinesError, "fly", status, f"Fly refused to {what}: HTTP {status} {message}")

    def _create_failed(self, response: HttpResponse, what: str, image: str | None, release: str) -> MachinesError:
        """A release's image Fly does not have is the release's fault, said so; else Fly's refusal."""
        if image and (said := image_refused(response, image)) is not None:
            return ReleaseImageMissing(release, "Fly", f"Fly cannot launch image {image}: {said[:300]}")
        return self._failed(response, what)

    def _create_body(self, spec: LaunchSpec) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "name": machine_name(spec.session_id),
            "config": {
                "image": spec.image or s.image,  # the session's release's, else the deployment's own
                "env": {**bot_environment(spec), **({IDENTITY_VARIABLE: "fly"} if spec.channel_token else {})},
                "guest": {"cpu_kind": s.cpu_kind, "cpus": s.cpus, "memory_mb": s.memory_mb},
                "auto_destroy": True,  # gone when the bot exits: one machine, one session
                "restart": {"policy": "no"},  # a finished or failed session is never re-run
                "metadata": {
                    META_SESSION: spec.session_id,
                    META_DIGEST: spec.body_digest,
                    META_CREATED: str(int(time.time())),
                    META_RELEASE: spec.release,
                    **({META_TRANSPORT: spec.transport} if spec.transport else {}),
                },
            },
        }
        if s.region:
            body["region"] = s.region
        return body

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        return await self.lost.create(spec.session_id, lambda: self._launch(spec))

    async def _launch(self, spec: LaunchSpec) -> LaunchResult:
        app = await self.cells.cold_turn(spec.session_id)
        response = await self._request("POST", "/machines", app=app, json=self._create_body(spec),
                                       before_retry=self.create_retry_turn(app))
        if response.status_code in (200, 201):
            self.cells.launched(app)
            machine = self._seen(response.json(), app)
            self._ids[spec.session_id] = machine.machine_id
            self._remember_launch(machine)
            return LaunchResult(machine, created=True)
        if response.status_code == 409:  # the name is taken: this session already has its machine
            existing = await found_after_conflict("fly", f"machine {machine_name(spec.session_id)}",
                                                  self._find(spec.session_id))
            return LaunchResult(existing, created=False)
        raise self._create_failed(response, "create a machine", spec.image, spec.release)

    def create_retry_turn(self, app: str, *, refill: bool = False) -> Callable[[], Awaitable[bool]]:
        """A create's retry is another create at Fly's limit, counted as it arrives whatever became of
        the first: it takes its token in `app` from the deployment's count as the first did (a reserve
        refill's, `refill`, as a refill does: only a spare one, never the one kept for a cold start). None
        due within FLY_CREATE_MAX_WAIT (a refill's: none now): the create gives up with its last failure."""
        async def turn() -> bool:
            if refill:
                return await self.creates.refill_retry(app)
            try:
                await self.creates.cold_turn(app)
            except MachinesError:
                return False
            return True
        return turn

    def _remember_launch(self, machine: Machine) -> None:
        self._launched[machine.session_id] = machine

    async def _list_in(self, app: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        await self.lists.cold_turn(app)
        response = await self._request("GET", "/machines", app=app, params=params)
        if response.status_code != 200:
            raise self._failed(response, "list machines")
        machines = list(response.json())
        for raw in machines:
            self._app_of[str(raw["id"])] = app
        return machines

    async def _list_all(self, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every app's machines (a reserve machine may be in any app)."""
        return [raw for app in self._clients for raw in await self._list_in(app, params)]

    async def _find(self, session_id: str) -> Machine | None:
        # Its own name in its app, or a reserve machine claimed for it in any app (fly/reserve.py).
        names = (machine_name(session_id),)
        found = [to_machine(m) for m in await self._list_all(
                     {f"metadata.{META_SESSION}": session_id, "include_deleted": "true"})
                 if m.get("name") in names or str(m.get("name", "")).startswith(IDLE_NAME_PREFIX)]
        if not found:
            return None
        # A live machine wins over a destroyed one of the same name; then the newest.
        best = max(found, key=lambda m: (m.state.is_active, m.created_at))
        self._ids[session_id] = best.machine_id
        return best

    async def status(self, session_id: str) -> Machine | None:
        machine_id = self._ids.get(session_id)
        if machine_id is None:
            return await self._find(session_id)
        response = await self._request("GET", f"/machines/{machine_id}")
        if response.status_code == 404:
            self._ids.pop(session_id, None)
            return await self._find(session_id)
        if response.status_code != 200:
            raise self._failed(response, "get a machine")
        return to_machine(response.json())

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        """Fly's own `/wait` blocks until the machine is `started`. The first wait is `WAIT_SLICE`
        long, its state read after the 408, so a machine that can no longer start (failed at boot,
        stopped, destroyed) ends the wait with its own reason within one; each later wait is twice
        as long (to WAIT_MAX), so a machine slow to boot costs a few waits, not one every 2 s per
        waiter (Fly allows 1 `/wait` a second per machine, shared by every waiter at every replica).
        A throttled `/wait` or state read is no news of the machine: waited out and sent again,
        never past the wait's own deadline, which ends it as `WaitTimeout`. A machine this replica has just
        launched is waited on at once (its state is known: `created`), and a 200 from `/wait` is
        the answer: no status read before or after it."""
        deadline = time.monotonic() + timeout
        machine = self._launched.pop(session_id, None)
        slice_ = WAIT_SLICE
        while True:
            try:
                if machine is None:  # not known here yet, or a 408 with time left: can it still start?
                    machine = await self.status(session_id)
                    if machine is None:
                        raise MachinesError("not_found", f"session {session_id} has no machine")
                if machine.state is not MachineState.STARTING:
                    return machine
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(session_id, timeout)
                # Fly blocks up to `timeout` whole seconds (max 60) and answers 408 when it passes.
                wait = max(1, min(slice_, WAIT_MAX, int(remaining)))  # whole seconds, not past the deadline
                response = await self._request(
                    "GET",
                    f"/machines/{machine.machine_id}/wait",
                    params={"state": "started", "timeout": str(wait)},
                    timeout=self.settings.timeout + wait,
                    backoff=replace(self._backoff, deadline=min(self._backoff.deadline, remaining)),
                )
            except MachinesError as exc:
                if exc.reason not in ("fly_throttled", "fly_rate_limited"):
                    raise
                # No news of the machine (Fly's limits, or our own list bucket, shared by every waiter).
                pause = (exc.retry_after or 1.0) * random.uniform(1.0, 2.0)  # noqa: S311 - spreads the waiters
                if time.monotonic() + pause >= deadline:
                    raise WaitTimeout(session_id, timeout) from None
                await asyncio.sleep(pause)
                continue
            if response.status_code == 200:
                return replace(machine, state=MachineState.STARTED)
            if response.status_code != 408:
                raise self._failed(response, "wait for a machine")
            if time.monotonic() >= deadline:
                raise WaitTimeout(session_id, timeout)
            slice_ = min(WAIT_MAX, slice_ * 2)
            machine = None

    async def stop(self, session_id: str) -> bool:
        machine = await self.status(session_id)
        if machine is None:
            return False
        if not machine.state.is_active:
            return True
        if machine.state is MachineState.STARTING:
            # Never booted (maybe stuck in `created`): nothing to stop gracefully, destroy it.
            response = await self._request("DELETE", f"/machines/{machine.machine_id}", params={"force": "true"})
        else:  # SIGTERM: the bot says goodbye and exits; auto_destroy removes the machine
            response = await self._request("POST", f"/machines/{machine.machine_id}/stop")
        if response.status_code not in (200, 202, 204, 404):
            raise self._failed(response, "stop a machine")
        return True

    async def list(self) -> list[Machine]:
        machines: list[Machine] = []
        for app in self._clients:  # each app's own, so each cell's running count is known
            found = [to_machine(m) for m in await self._list_in(app)
                     if META_SESSION in ((m.get("config") or {}).get("metadata") or {})]
            self.cells.counted(app, sum(m.state.is_active for m in found))
            machines += found
        return machines

    async def aclose(self) -> None:
        await self.lost.aclose()
        for client in self._clients.values():
            await client.aclose()
        await self.identity.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: A Fly Machine's bot finds the channel in its machine config
        (`BOT_CHANNEL_URL`), and its credential travels with each launch."""
