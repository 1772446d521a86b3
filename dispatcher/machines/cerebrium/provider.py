"""`MACHINES=cerebrium`: each session is one async call of a deployed Cerebrium app's function.

`POST {CEREBRIUM_API_URL}/{project}/{app}/{function}?async=true` with the project's JWT answers 202
`{run_id}`; the function (the team's `start_bot`, docs/providers.md) runs the voicefleet bot until it
returns, or until the app's `response_grace_period` ends it. It receives only the launch values:
the session id, the channel's URL, the bot's own channel credential (bound to this one session,
expiring with it), the max duration and transport; the room, token, TURN credentials and the
caller's body come over the channel after the bot's hello, as on every provider with a channel.
Cerebrium documents no way to read or cancel a run, so everything after the 202 is the channel's
word (runs.py): a run is `starting` until its bot says hello, `started` then, `ended`/`failed` as
its `ended` report says, `failed` when it never connects within CEREBRIUM_CONNECT_SECONDS or its
channel drops and stays gone CEREBRIUM_REDIAL_SECONDS. `stop` tells the bot over its channel (at
the replica holding it, through the store's relay otherwise). Hardware (CPU, memory, BOT_GPU's
`compute`) and the warm pool (`min_replicas`) are the app's cerebrium.toml: no call sets them.

Releases: a call names an app, and an app serves its latest deploy only (Cerebrium documents no way
to call an earlier one), so a release is an app of its own, deployed once (`spec.image`: its name,
in place of CEREBRIUM_APP). The run's record keeps the release; an app Cerebrium does not know
(404) is refused `release_image_missing`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from botchannel.contract import METHOD_STOP, Report
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.channel.identity import Unverified
from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachinesError, MachineState
from dispatcher.machines.bot_environment import session_transport
from dispatcher.machines.call_timings import call_timings
from dispatcher.machines.cerebrium.runs import Run, Runs
from dispatcher.machines.gpu import gpu_from_env
from dispatcher.machines.polling import poll_until_started
from dispatcher.machines.releases import ReleaseImageMissing
from dispatcher.outbound.http_client import HttpClient, HttpResponse
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, create_request
from dispatcher.settings import SettingsError, require
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, SessionValues
from dispatcher.store.secrets_vault import VaultFull
from voicefleet_settings.read import setting_float, setting_int, setting_text

log = logging.getLogger("dispatcher.machines.cerebrium")
DEFAULT_API_URL = "https://api.aws.us-east-1.cerebrium.ai/v4"  # docs.cerebrium.ai, "Inference API"
# A run's records outlive its session by this much (its end is read after it), and no more: one
# process keeps at most MAX_KEPT of them (dispatcher/store/secrets_vault.py).
KEEP_AFTER_SECONDS = 3600.0
RELAY_TIMEOUT_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class CerebriumSettings:
    project: str
    app: str
    channel_url: str  # BOT_CHANNEL_URL: where the function's bot dials
    api_key: str = field(repr=False)  # the project's JWT (API Keys in Cerebrium's dashboard)
    records_key: bytes = field(repr=False)  # seals the runs' records in the store
    function: str = "start_bot"
    api_url: str = DEFAULT_API_URL
    connect_seconds: float = 120.0  # a run's bot must say hello within this: cold start + init
    redial_seconds: float = 30.0  # a dropped channel may come back (a replica's drain) within this
    timeout: float = 15.0
    retry_deadline: float = 15.0
    poll_seconds: float = 0.5
    gpu_compute: str | None = None  # BOT_GPU's Cerebrium name: what the app's cerebrium.toml must say
    keep_seconds: float = 1800 + KEEP_AFTER_SECONDS  # MAX_SESSION_SECONDS + an hour

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CerebriumSettings:
        required = require(env, ("CEREBRIUM_PROJECT", "CEREBRIUM_APP", "CEREBRIUM_API_KEY", "BOT_CHANNEL_TOKEN",
                                 "BOT_CHANNEL_URL"), "cerebrium")
        function = setting_text(env, "CEREBRIUM_FUNCTION")
        if function.startswith("_") or not function.isidentifier():
            # Cerebrium keeps `_name` functions private: a call answers 404.
            raise SettingsError(f"CEREBRIUM_FUNCTION={function!r} must be a public Python function name (no _)")
        secret = required["BOT_CHANNEL_TOKEN"].encode()
        gpu = gpu_from_env(env)
        return cls(
            project=required["CEREBRIUM_PROJECT"],
            app=required["CEREBRIUM_APP"],
            channel_url=required["BOT_CHANNEL_URL"],
            api_key=required["CEREBRIUM_API_KEY"],
            records_key=hmac.new(secret, b"voicefleet cerebrium runs v1", hashlib.sha256).digest(),
            function=function,
            api_url=(setting_text(env, "CEREBRIUM_API_URL")).rstrip("/"),
            connect_seconds=setting_float(env, "CEREBRIUM_CONNECT_SECONDS"),
            redial_seconds=setting_float(env, "CEREBRIUM_REDIAL_SECONDS"),
            **call_timings(env, "CEREBRIUM"),
            gpu_compute=gpu.gpu.cerebrium if gpu is not None else None,
            keep_seconds=setting_int(env, "MAX_SESSION_SECONDS") + KEEP_AFTER_SECONDS,
        )


class CerebriumMachines:
    name = "cerebrium"

    def __init__(self, settings: CerebriumSettings, coordination: Coordination,
                 records: SessionValues | None = None) -> None:
        self.settings = settings
        self._coordination = coordination
        values = records if records is not None else coordination.session_values(settings.records_key)
        self.runs = Runs(coordination.key_holders, values, settings.keep_seconds)
        self._client = HttpClient(settings.api_url, timeout=settings.timeout)
        self._backoff = Backoff(attempts=5, base=0.5, cap=4.0, deadline=settings.retry_deadline)
        self._channels: BotChannels | None = None
        self._known: dict[str, float] = {}  # sessions launched or reached here, for `list`
        self._writes: set[asyncio.Task[None]] = set()
        self._writing = asyncio.Lock()  # this replica's record writes, one at a time (each reads, then writes)
        # A run has no identity Cerebrium signs: its credential, bound to its one session and
        # expiring with it, is all a hello shows (docs/security.md).
        self.identity = Unverified("Cerebrium gives a function call no identity token to check")
        if settings.gpu_compute is not None:  # the dispatcher sets no hardware: the app's deploy does
            log.info("BOT_GPU: the Cerebrium app %s must be deployed with compute = \"%s\" in its cerebrium.toml "
                     "(no call sets hardware)", settings.app, settings.gpu_compute)

    # --- the launch --------------------------------------------------------------------

    def call_body(self, spec: LaunchSpec) -> dict[str, Any]:
        """What the function receives: launch values only (its credential opens this session's channel alone)."""
        return {
            "session_id": spec.session_id,
            "channel_url": self.settings.channel_url,
            "channel_token": spec.channel_token,
            "max_session_seconds": spec.max_session_seconds,
            "transport": session_transport(spec),
        }

    def function_path(self, app: str | None = None) -> str:
        """The function of `app` (a release's; None: CEREBRIUM_APP), each part one path segment."""
        s = self.settings
        return "/" + "/".join(quote(part, safe="") for part in (s.project, app or s.app, s.function))

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        run = Run(created_at=time.time(), body_digest=spec.body_digest, transport=spec.transport,
                  release=spec.release)
        existing = await self._store(self.runs.claim(spec.session_id, run))
        if existing is not None:  # a replay, or a concurrent start at another replica: one call only
            return LaunchResult(self._machine(spec.session_id, existing), created=False)
        self._known[spec.session_id] = run.created_at
        try:
            # No idempotency key: a call that got no answer (or a 5xx) may have started a run, and a
            # second call would start another (two bots, two billed runs). Never sent again: refused
            # `cerebrium_unavailable`, the run failed below, and a bot of that run that dials in
            # anyway is told to stop (`_stop_if_ended`).
            response = await create_request(
                "cerebrium", self._client, "POST", self.function_path(spec.image), backoff=self._backoff,
                error=MachinesError, params={"async": "true"}, json=self.call_body(spec),
                headers={"Authorization": f"Bearer {self.settings.api_key}"},
            )
            if response.status_code == 404 and spec.image and spec.image != self.settings.app:
                raise ReleaseImageMissing(spec.release, "Cerebrium", f"Cerebrium has no function "
                                          f"{self.settings.function} in app {spec.image} (HTTP 404)")
            if response.status_code not in (200, 202):
                raise self._failed(response, spec.image)
            run_id = str(response.json().get("run_id") or "") or None
        except MachinesError as exc:
            # The claim stays (a retry of this session must not call twice): the run is failed.
            await self._update(spec.session_id, ended="failed", detail=exc.reason)
            raise
        updated = await self._update(spec.session_id, run_id=run_id)
        return LaunchResult(self._machine(spec.session_id, updated or run), created=True)

    def _failed(self, response: HttpResponse, app: str | None = None) -> MachinesError:
        """Cerebrium's error body is undocumented: the status alone says what to do."""
        where = f"{self.settings.project}/{app or self.settings.app}/{self.settings.function}"
        if response.status_code in (401, 403):
            message = (f"Cerebrium refused CEREBRIUM_API_KEY for {where} (HTTP {response.status_code}): set the "
                       "JWT of this project's API Keys page")
        elif response.status_code == 404:
            message = (f"Cerebrium knows no function {where} (HTTP 404): deploy the app (cerebrium deploy) and check "
                       "CEREBRIUM_PROJECT, CEREBRIUM_APP and CEREBRIUM_FUNCTION")
        else:
            message = f"Cerebrium refused the call of {where} (HTTP {response.status_code})"
        return refusal(MachinesError, "cerebrium", response.status_code, message)

    async def _update(self, session_id: str, **changes: Any) -> Run | None:
        """One record write at a time in this replica: each reads the record, then writes it whole, so a
        hello that lands while the launch records its run id is not written over."""
        async with self._writing:
            return await self._store(self.runs.update(session_id, **changes))

    @staticmethod
    async def _store(work: Awaitable[T]) -> T:
        try:
            return await work
        except VaultFull as exc:  # one process: as many runs as it keeps records for, in its last hours
            raise MachinesError("cerebrium_capacity", str(exc), retry_after=30.0) from exc
        except StoreUnavailable as exc:
            raise MachinesError("cerebrium_unavailable", "the store that holds Cerebrium runs does not answer",
                                retry_after=2.0) from exc

    # --- what a run is now ------------------------------------------------------------

    def _machine(self, session_id: str, run: Run) -> Machine:
        state, detail = self._state(run)
        return Machine(session_id=session_id, machine_id=run.run_id or f"cerebrium-{session_id}", state=state,
                       created_at=run.created_at, body_digest=run.body_digest, detail=detail,
                       transport=run.transport, release=run.release)

    def _state(self, run: Run) -> tuple[MachineState, str | None]:
        now = time.time()
        if run.ended is not None:
            return MachineState(run.ended), run.detail
        if run.connected_at is None:
            if now - run.created_at > self.settings.connect_seconds:
                return MachineState.FAILED, f"its bot did not connect within {self.settings.connect_seconds:g}s"
            return MachineState.STARTING, None
        if run.dropped_at is not None and now - run.dropped_at > self.settings.redial_seconds:
            return MachineState.FAILED, "its bot's channel was lost (the run ended without a word)"
        return MachineState.STARTED, None

    async def status(self, session_id: str) -> Machine | None:
        run = await self._store(self.runs.get(session_id))
        if run is None:
            return None
        machine = self._machine(session_id, run)
        if machine.state is MachineState.FAILED and run.ended is None:  # found out now: written down
            await self._update(session_id, ended="failed", detail=machine.detail)
        return machine

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        return await poll_until_started(self.status, session_id, timeout, self.settings.poll_seconds)

    async def stop(self, session_id: str) -> bool:
        """Tell the bot to end its session (the function then returns and the run ends)."""
        run = await self._store(self.runs.get(session_id))
        if run is None:
            return False
        if run.ended is not None:
            return True
        await self._update(session_id, ended="ended", detail="stopped")
        try:
            link = self._channels.link_for(session_id) if self._channels is not None else None
            if link is not None:
                await link.request(METHOD_STOP, {})
            else:
                await self._coordination.ask_owner(session_id, METHOD_STOP, {}, RELAY_TIMEOUT_SECONDS)
        except (ApiError, StoreUnavailable, TimeoutError) as exc:
            # Unreached, it still ends: at its own max duration, or the app's response_grace_period.
            log.warning("session %s: the Cerebrium run's bot was not told to stop (%s)", session_id,
                        type(exc).__name__)
        return True

    async def list(self) -> list[Machine]:
        """The runs this replica launched or holds the channel of (no API lists runs); the
        reaper and admission count each replica's own, as with local bots."""
        machines: list[Machine] = []
        for session_id in list(self._known):
            run = await self._store(self.runs.get(session_id))
            if run is None or run.ended is not None:
                self._known.pop(session_id, None)
            if run is not None:
                machines.append(self._machine(session_id, run))
        return machines

    async def aclose(self) -> None:
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=2.0)
        await self._client.aclose()

    def attach_channel(self, access: ChannelAccess) -> None:
        """Nothing to attach: the channel's URL goes with each call (`call_body`)."""

    # --- what the channel says ---------------------------------------------------------

    def watch_channels(self, channels: BotChannels) -> None:
        """This replica's bots' channel events become their runs' records (any replica reads them)."""
        self._channels = channels
        channels.session_listeners.append(self.bot_connected)
        channels.report_listeners.append(self.bot_reported)
        channels.close_listeners.append(self.bot_closed)

    def bot_connected(self, link: BotLink) -> None:
        if link.session_id is not None:
            self._known.setdefault(link.session_id, time.time())
            self._write(link.session_id, connected_at=time.time(), dropped_at=None)
            self._spawn(self._stop_if_ended(link, link.session_id))

    async def _stop_if_ended(self, link: BotLink, session_id: str) -> None:
        """A session stopped before its bot dialled (a stop finds no channel to tell): told now, so
        the function returns instead of its bot waiting out its connect timeout, billed."""
        try:
            run = await self.runs.get(session_id)
            if run is not None and run.ended is not None:
                await link.request(METHOD_STOP, {})
        except (ApiError, StoreUnavailable) as exc:
            log.warning("session %s: its late bot was not told to stop (%s)", session_id, type(exc).__name__)

    def bot_reported(self, link: BotLink, report: Report) -> None:
        if report.event == "ended":
            failed = report.exit_code not in (None, 0)
            detail = f"exit code {report.exit_code}" if failed else report.reason
            self._write(report.session_id, ended="failed" if failed else "ended", detail=detail)

    def bot_closed(self, link: BotLink) -> None:
        session_id = link.session_id
        if session_id is None or (self._channels is not None and self._channels.link_for(session_id) is not None):
            return  # an idle link, or a newer one of the session is here
        if "ended" not in link.reports:
            self._write(session_id, dropped_at=time.time())

    def _write(self, session_id: str, **changes: Any) -> None:
        async def write() -> None:
            try:
                await self._update(session_id, **changes)
            except MachinesError:
                log.warning("session %s: its Cerebrium run's record was not updated (store down)", session_id)

        self._spawn(write())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def settled(self) -> None:
        """The channel's writes under way are done (tests)."""
        if self._writes:
            await asyncio.wait(set(self._writes))
