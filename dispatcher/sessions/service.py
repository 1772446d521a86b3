"""Session lifecycle: start (idempotent), look up, stop. Stateless: the provider is the record."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

import dispatcher.observability.tracing as tracing
from botchannel.recording import RecordingPlan
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.wanted import Wanted
from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError
from dispatcher.machines.base import (
    LaunchResult,
    LaunchSpec,
    Machine,
    Machines,
    MachinesError,
    MachineState,
    WaitTimeout,
)
from dispatcher.machines.cells import PartialListing
from dispatcher.machines.lost_creates import LostCreates
from dispatcher.media.room_options import RoomOptions
from dispatcher.media.rooms import NO_OPTIONS, RoomGrant, Rooms
from dispatcher.media.turn import TurnCredentials
from dispatcher.models.admission import ModelServiceAdmission
from dispatcher.observability.log_format import working_for
from dispatcher.observability.metrics import Metrics
from dispatcher.outbound.provider_errors import ProviderError, as_api_error
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.reserve.policy import DEFAULT_COLD_START_SECONDS
from dispatcher.reserve.reserve import NoWarmBot
from dispatcher.sessions.admission import Admission
from dispatcher.sessions.budget_usage import is_end
from dispatcher.sessions.budgets import Budgets
from dispatcher.sessions.cold_secrets import ColdSecrets
from dispatcher.sessions.cost import SessionCost, SessionCosts
from dispatcher.sessions.exclusive import exclusive_start
from dispatcher.sessions.ids import Caller, body_digest, digest_key, new_session_id
from dispatcher.sessions.key_share import KeyShare
from dispatcher.sessions.listing import SessionListing
from dispatcher.sessions.machine_ends import MachineEnds
from dispatcher.sessions.noted_once import NotedOnce
from dispatcher.sessions.ready_estimate import ReadyEstimate, never_warm, none_claimable, too_slow
from dispatcher.sessions.reported_end import as_reported
from dispatcher.sessions.timeline import SessionTimeline, is_eval, session_error, trace_id_of
from dispatcher.settings import Settings
from dispatcher.store.coordination import Coordination
from dispatcher.store.running_sessions import PartlyFound
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.sessions.service")
# Sessions with no Daily room: SmallWebRTC (the client posts an offer) and a phone call's WebSocket.
ROOMLESS = ("webrtc", "websocket")
# What a start came to, in its timeline: its machine (claimed or launched), or its failure.
START_OUTCOMES = ("claimed", "launched", "failed")
STOP_NOTED = "stop_requested"  # a session's stop, noted on its timeline once (the coordination's once-mark)
T = TypeVar("T")

@dataclass(frozen=True)
class Session:
    machine: Machine
    created: bool = False
    room_url: str | None = None  # cloud sessions: the Daily room
    user_token: str | None = field(default=None, repr=False)  # a cloud start only: the caller's token
    trace_id: str | None = None  # the trace the session was started in (dispatcher/observability/tracing.py)
    error: str | None = None  # the last fatal pipeline error its bot reported (the session may go on)
    cost: SessionCost | None = None  # what its machine cost so far (a look-up's, not a start's)
    eval: bool = False  # an eval's session (docs/evals.md): never judged for its release, nor in cost and load

    @property
    def takes_offers(self) -> bool:
        """A SmallWebRTC session (local, or cloud through the relay): the client posts an offer."""
        return self.machine.is_webrtc

    @classmethod
    def granted(cls, machine: Machine, created: bool, grant: RoomGrant | None) -> Session:
        if grant is None:
            return cls(machine, created)
        return cls(machine, created, room_url=grant.room_url, user_token=grant.user_token)


class SessionService:
    def __init__(
        self,
        settings: Settings,
        machines: Machines,
        rooms: Rooms | None,
        metrics: Metrics,
        *,
        launch: Callable[[LaunchSpec], Awaitable[LaunchResult]] | None = None,
        claim: Callable[[LaunchSpec], Awaitable[LaunchResult]] | None = None,  # warm only, else NoWarmBot
        claimable: Callable[[str, float], Awaitable[bool]] = none_claimable,  # a warm bot for it within s?
        ready: ReadyEstimate | None = None,  # the wait a cold start is told (default: the provider's published)
        turn: TurnCredentials | None = None,
        coordination: Coordination,  # what the replicas share (one process: dispatcher/store/local.py)
        channels: BotChannels | None = None,  # the bot channel: cold bots take their session's values over it
        cold_secrets_deadline_seconds: float | None = None,
        timeline: SessionTimeline,
        reserve_max_idle: int = 0,  # the warm reserve's size: each key's warm share is a part of it
        releases: LiveReleases | None = None,  # which bot version each session runs (default: one, `default`)
        costs: SessionCosts | None = None,  # a session's cost, priced (default: not priced)
    ) -> None:
        self._settings = settings
        self.timeline = timeline
        self.recordings: SessionRecordings | None = None  # set by the wiring (dispatcher/artifacts/)
        # The shared model service every bot streams to (MODEL_SERVICE_URL), set by the wiring.
        self.model_service: ModelServiceAdmission | None = None
        self.costs = costs or SessionCosts(machines.name, None)
        # What `GET /sessions` lists: an entry at each admitted start, closed by its timeline's end.
        self.listing = SessionListing(coordination.session_index, settings.region, settings.max_session_seconds)
        timeline.listeners.append(self.listing.timeline_event)
        # Every sighting of an ended machine (a provider's own word, the reaper's list, a read) told once.
        self.ends = MachineEnds(timeline, coordination.spent)
        self.releases = releases or LiveReleases(Catalogue.single(), coordination.releases)
        self._coordination = coordination
        self.noted_once = NotedOnce(coordination)  # a stop, a placed call's outcome: noted once, at any replica
        self._machines = machines
        lost = getattr(machines, "lost", None)  # a cloud provider's reconcile of a lost create
        if isinstance(lost, LostCreates):
            lost.retried_since = self._requested_since
        # The warm reserve's claim-else-cold launch (dispatcher/reserve/reserve.py), or the provider's own.
        self._launch_machine = launch or machines.launch
        self._claim = claim or never_warm
        self._claimable = claimable
        self.ready = ready or ReadyEstimate.of(None, DEFAULT_COLD_START_SECONDS.get(settings.machines, 1.5))
        self._rooms = rooms
        self._turn = turn  # cloud WebRTC: the bot's own short-lived TURN credentials
        # Each cold bot's own channel credential, and its session's values held for its hello.
        self._cold = (ColdSecrets(settings, machines, channels, metrics, coordination, cold_secrets_deadline_seconds)
                      if channels is not None and channels.enabled else None)
        self._metrics = metrics
        self._admission = Admission(settings.max_concurrent_sessions, self.active_count,
                                    launches=coordination.launches(keep_seconds=10.0),
                                    active_sessions=self.active_sessions)
        self.admission = self._admission  # the session cap, changed at runtime (dispatcher/api/runtime_capacity.py)
        self.share = KeyShare(settings, coordination.key_sessions, self._status, api_keys=settings.api_callers,
                              warm_rate=coordination.start_rate, reserve_max_idle=reserve_max_idle)
        self.budgets = Budgets()  # each key's budgets, applied at runtime (dispatcher/api/runtime_capacity.py)
        self._background: set[asyncio.Task[None]] = set()
        timeline.listeners.append(self._running_ended)
        self._waits: dict[str, asyncio.Task[Machine]] = {}  # session → the one wait every waiter here shares

    def session_id_for(self, owner_key: bytes | str, idempotency_key: str | None) -> str:
        """The id a start with this key gets here (it names this region, with several)."""
        return new_session_id(owner_key, idempotency_key, self._settings.region)

    def room(self) -> int:
        """Sessions that may still start under the cap, by admission's cached count (no provider call)."""
        return self._admission.room()

    async def active_count(self) -> int:
        return sum(1 for m in await self._call(self._machines.list()) if m.state.is_active)

    async def active_sessions(self) -> Collection[str]:
        """The sessions whose machines the provider lists as active (one list); `PartlyFound` when
        the list left cells out (their sessions not judged gone)."""
        listed = await self._call(self._machines.list())
        active = {m.session_id for m in listed if m.state.is_active}
        return PartlyFound(active) if isinstance(listed, PartialListing) else active

    def _running_ended(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: an ended session no longer counts among the deployment's running ones."""
        if is_end(record):  # a start that timed out counts while its machine may still start
            task = asyncio.create_task(self._admission.ended(session_id), name=f"running-ended-{session_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def active_by_release(self) -> tuple[dict[str, int], dict[str, int]]:
        """Active sessions by release, callers' then evals': every configured release (0 without
        any), and any other a machine still runs (a release the configuration no longer lists)."""
        callers = dict.fromkeys(self.releases.catalogue.names, 0)
        evals: dict[str, int] = {}
        machines = [m for m in await self._call(self._machines.list()) if m.state.is_active]
        marked = await self._active_evals() if machines else set()
        for machine in machines:
            counts = evals if machine.session_id in marked else callers
            release = machine.release or DEFAULT_RELEASE
            counts[release] = counts.get(release, 0) + 1
        return callers, evals

    async def _active_evals(self) -> set[str]:
        """The evals' active sessions, from the listing; none when it does not answer (each then
        counted as a caller's: the sessions are still counted)."""
        try:
            return await self.listing.active_evals()
        except Exception as exc:  # the store: a scrape still answers
            log.warning("metrics: the evals' sessions could not be read (%s); counted as callers'", exc)
            return set()

    async def start(
        self,
        *,
        caller: Caller | str,
        idempotency_key: str | None,
        body: Mapping[str, Any],
        wait: bool,
        room_options: RoomOptions = NO_OPTIONS,
        transport: str | None = None,
        max_wait_seconds: float | None = None,
        counted_elsewhere: bool = False,
        release: str | None = None,
        recording: Wanted | None = None,
        eval_session: bool = False,
    ) -> Session:
        """`transport`: "daily" or "webrtc", one of `Settings.transports` (default: the first).
        `recording`: the start's own wish (it lowers the session's policy; it never raises it).
        `release`: the caller's pin (else the key's default release, else one drawn by weight).
        `max_wait_seconds`: the caller's patience; a cold start quoted longer is not launched.
        `counted_elsewhere`: spilled over from the region whose demand it is.
        `eval_session`: an eval's call, pinned (no `release`: the key's, else the stable one, never drawn)."""
        transport = transport or self._settings.transports[0]
        owner = caller if isinstance(caller, Caller) else Caller.named(caller)
        session_id = self.session_id_for(owner.owner_key, idempotency_key)  # bound to the caller's key
        # Before anything exists: an unknown release is refused with nothing to clean up.
        chosen, chosen_by = self.releases.choose(session_id, pinned=release, caller_id=owner.id,
                                                 drawn_by_weight=not eval_session)
        marked = {"eval": True} if eval_session else {}
        digest = body_digest(body, digest_key(owner.owner_key, self._settings.bot_channel_token))
        began = time.monotonic()
        keyed = idempotency_key is not None
        requested = False  # a session exists to tell about (not a refused or replayed start)
        # This start's log lines name its session (dispatcher/observability/log_format.py), its spans too.
        span_fields = {"voicefleet.transport": transport, "voicefleet.release": chosen.name}
        with working_for(session_id, chosen.name), tracing.session_trace(session_id, **span_fields) as trace:
            try:
                async with exclusive_start(self._coordination, session_id, keyed=keyed,
                                           idempotent_launch=self._settings.cloud,
                                           wait_seconds=self._settings.start_wait_seconds) as cold_only:
                    existing = await self._replay(session_id, digest, room_options, transport) if keyed else None
                    if existing is not None:
                        events = await self.timeline.read(session_id)
                        if self._adopts(existing, events):
                            await self._adopt(session_id, existing, digest, body, room_options, transport,
                                              traceparent=trace.traceparent)
                        session = replace(existing, trace_id=trace_id_of(events), eval=is_eval(events))
                    else:
                        # Quoted before anything exists, so a refusal leaves nothing behind.
                        quote = self.ready.before_launch()
                        warm_only = max_wait_seconds is not None and quote > max_wait_seconds
                        # No idle bot now (or the store is down, so a claim is not safe): refused before
                        # a room, a held secret or a machine exists. With one, the claim decides.
                        if warm_only and (cold_only or not await self._claimable(transport, max_wait_seconds or 0.0)):
                            raise too_slow(quote, max_wait_seconds)
                        cold_because: str | None = None
                        async with contextlib.AsyncExitStack() as admitted:
                            if owner.name is not None:  # a budgeted key's place, taken for every replica
                                await self.budgets.admit(owner.name, session_id)
                                # Given back if the start goes no further (a start counted since keeps it).
                                admitted.callback(self.budgets.cancel, owner.name, session_id)
                            with tracing.step("session.admission"):
                                if self.model_service is not None:  # its bot needs a free stream there
                                    await admitted.enter_async_context(
                                        self.share.slot(owner.id, session_id, internal=owner.internal))
                                    await admitted.enter_async_context(self.model_service.slot(
                                        session_id, self.share.stream_share(owner.id, internal=owner.internal)))
                                    await admitted.enter_async_context(self._admission.slot(session_id=session_id))
                                else:  # the key's share and the cap in one step (one store round trip)
                                    await admitted.enter_async_context(self.share.slot_with_cap(
                                        owner.id, session_id, internal=owner.internal,
                                        cap=functools.partial(self._admission.slot, session_id=session_id)))
                            if (not cold_only and self.share.bounds_warm(owner.id, internal=owner.internal)
                                    and await self._claimable(transport, math.inf)
                                    and not await self.share.may_claim_warm(owner.id, internal=owner.internal)):
                                if warm_only:
                                    raise self.share.warm_spent()
                                cold_only = True  # past its warm share: served cold, the reserve left to others
                                cold_because = "key_warm_share"  # its timeline and `status` say why it went cold
                                self._metrics.activity.went_cold(cold_because)
                            # Only an admitted start is a session: a refusal above (the key's share, the
                            # cap) leaves no timeline and no `session.failed` webhook behind it.
                            self.timeline.note(session_id, "requested", trace_id=trace.trace_id,
                                               transport=transport, keyed=keyed, traceparent=trace.traceparent,
                                               release=chosen.name, release_chosen_by=chosen_by,
                                               caller_id=owner.id, caller_internal=owner.internal or None,
                                               cold_because=cold_because, **marked)
                            self.listing.opened(session_id, owner, chosen.name, transport, **marked)
                            requested = True
                            plan = await self.recordings.plan_for(
                                session_id, transport=transport, release=chosen.name, key_name=owner.name,
                                wanted=recording) if self.recordings is not None else None
                            try:
                                session = await self._launch(session_id, digest, body, room_options, transport,
                                                             keyed=keyed, cold_only=cold_only, warm_only=warm_only,
                                                             traceparent=trace.traceparent,
                                                             counted_elsewhere=counted_elsewhere, release=chosen,
                                                             recording=plan)
                            except NoWarmBot:
                                raise too_slow(quote, max_wait_seconds) from None
                            if owner.name is not None:  # counted by the usage from now: its hold goes
                                self.budgets.release(owner.name, session_id)
                                self.budgets.usage.started(owner.name, session_id)
                        session = replace(session, trace_id=trace.trace_id, eval=eval_session)
                if wait and session.machine.state is MachineState.STARTING:  # past it: nothing to wait for
                    with tracing.step("session.wait") as waited:  # `?wait=started`: until the bot runs
                        try:
                            session = replace(session, machine=await self._shared_wait(session.machine))
                        except ApiError as exc:
                            tracing.failed(waited, exc.code)
                            raise
                        waited.set_attribute("voicefleet.machine.state", session.machine.state.value)
                    if not session.machine.state.is_active:
                        # Ends the room the bot will never join (a WebRTC session has none).
                        await self._clean_up(session_id, with_room=session.machine.has_room)
                        raise self._did_not_start(session.machine)
            except ApiError as exc:
                self._metrics.failed(exc.code, chosen.name)
                if requested:  # its timeline names the cause (a refusal at admission is no session)
                    self.timeline.note(session_id, "failed", code=exc.code, message=exc.message, status=exc.status)
                    if self.recordings is not None:
                        self.recordings.discard(session_id)
                    exc.extra.setdefault("session_id", session_id)
                raise
        release_name = session.machine.release or chosen.name  # a replay's: the release it started with
        self._metrics.launch_took(time.monotonic() - began, waited=wait, release=release_name)
        self._metrics.started(created=session.created, release=release_name, evaluation=eval_session)
        return session

    @overload
    def _with_transport(self, machine: Machine, transport: str | None = None) -> Machine: ...
    @overload
    def _with_transport(self, machine: None, transport: str | None = None) -> None: ...

    def _with_transport(self, machine: Machine | None, transport: str | None = None) -> Machine | None:
        """Machines record their transport (tag, label, metadata); one that does not (a claimed Fly
        reserve machine: Fly's per-machine write limit leaves no room for a fourth tag) has the
        one it was launched with, if known here, else the deployment's default."""
        if machine is None or machine.transport:
            return machine
        return replace(machine, transport=transport or self._settings.transports[0])

    async def _replay(self, session_id: str, digest: str, options: RoomOptions, transport: str) -> Session | None:
        machine = self._with_transport(await self._call(self._machines.status(session_id)))
        if machine is None:
            return None
        self.ends.observed(machine)
        conflict = machine.body_digest is not None and machine.body_digest != digest
        if machine.has_room != (transport not in ROOMLESS) or machine.is_webrtc != (transport == "webrtc"):
            conflict = True  # the same key asked for the other transport
        if conflict:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was already used with a different body",
                extra={"session_id": session_id},
            )
        if not machine.has_room:
            return Session(machine, created=False)
        if machine.state.is_active and self._rooms is not None:
            # The start that launched this machine may have failed half-way and ended the room
            # (a late machine after a timeout): the retry makes sure the bot has a room to join.
            await self._call(self._rooms.create(session_id, self._settings.max_session_seconds, options))
        return Session.granted(machine, False, await self._grant(session_id, options))

    async def _launch(
        self,
        session_id: str,
        digest: str,
        body: Mapping[str, Any],
        options: RoomOptions,
        transport: str,
        *,
        keyed: bool,
        cold_only: bool = False,
        warm_only: bool = False,
        traceparent: str | None = None,
        counted_elsewhere: bool = False,
        release: Release | None = None,
        recording: RecordingPlan | None = None,
    ) -> Session:
        roomless = transport in ROOMLESS
        grant = None if roomless else await self._grant(session_id, options)
        spec = self._spec(session_id, digest, body, transport, grant, traceparent=traceparent,
                          counted_elsewhere=counted_elsewhere, release=release, recording=recording)
        if self._cold is not None:
            await self._cold.hold(spec)  # before the machine exists: its bot may dial at once
        room = self._no_room() if roomless else self._create_room(session_id, options)
        launch_with = self._claim if warm_only else self._machines.launch if cold_only else self._launch_machine
        launch = self._traced_launch(launch_with, spec)
        # The room URL is known from the session id, so the room and the machine are created
        # at once: a start costs about one provider round trip, not the sum of two.
        room_result, launch_result = await asyncio.gather(room, launch, return_exceptions=True)
        failure = next((r for r in (launch_result, room_result) if isinstance(r, BaseException)), None)
        if failure is not None:
            await self._clean_up(session_id, with_room=not roomless)
            if self._cold is not None:
                await self._cold.forget(session_id)
            if isinstance(failure, NoWarmBot):
                raise failure  # the caller's patience said warm or nothing: answered in `start`
            error = as_api_error(failure)
            if keyed and not isinstance(launch_result, BaseException) and launch_result.created:
                # The key's machine existed and has just been stopped; a retry with this key would
                # replay that ended session (it never starts a second machine), so do not invite
                # one: the client needs a new Idempotency-Key.
                raise ApiError(
                    502,
                    "session_setup_failed",
                    f"{error.message}; the session was stopped: start again with a new Idempotency-Key",
                    extra={"session_id": session_id},
                )
            raise error
        assert not isinstance(launch_result, BaseException)
        if self._cold is not None:
            await self._cold.launched(session_id, launch_result)
        self.timeline.note(session_id, "claimed" if launch_result.claimed else "launched",
                           machine_id=launch_result.machine.machine_id, provider=self._machines.name,
                           created=launch_result.created, idle_seconds=launch_result.idle_seconds)
        log.info("session %s launched on %s (created=%s)", session_id, self._machines.name, launch_result.created)
        return Session.granted(self._with_transport(launch_result.machine, transport), launch_result.created, grant)

    def _spec(self, session_id: str, digest: str, body: Mapping[str, Any], transport: str, grant: RoomGrant | None,
              *, traceparent: str | None, counted_elsewhere: bool = False,
              release: Release | None = None, recording: RecordingPlan | None = None) -> LaunchSpec:
        """What a cold machine is launched with (its bot's values, held for its hello with a channel)."""
        release = release or self.releases.catalogue.releases[0]
        return LaunchSpec(
            session_id=session_id,
            body_digest=digest,
            max_session_seconds=self._settings.max_session_seconds,
            body=dict(body),
            room_url=grant.room_url if grant else None,
            bot_token=grant.bot_token if grant else None,
            # The bot's own credentials, never the client's: each peer's allocations are its own.
            ice_config=self._turn.ice_config(session_id, role="bot") if transport == "webrtc" and self._turn else None,
            transport=transport,
            channel_token=self._cold.channel_token(session_id) if self._cold is not None else None,
            traceparent=traceparent,
            counted_elsewhere=counted_elsewhere,
            release=release.name,
            image=release.image_for(transport),
            release_env=dict(release.env),
            recording=recording,
        )

    @staticmethod
    def _did_not_start(machine: Machine) -> ApiError:
        """`?wait=started` asked for a running bot; one that ended first is an error, not a 2xx."""
        why = machine.detail or machine.state.value
        return ApiError(
            502,
            "start_failed",
            f"the bot {machine.state.value} before it started ({why}); GET /sessions/{machine.session_id} keeps it",
            extra={"session_id": machine.session_id},
        )

    async def _grant(self, session_id: str, options: RoomOptions) -> RoomGrant | None:
        if self._rooms is None:
            return None
        return await self._call(self._rooms.grant(session_id, self._settings.max_session_seconds, options))

    @staticmethod
    async def _no_room() -> None:
        """A WebRTC session's media goes peer to peer (through the TURN relay): no room."""

    async def _create_room(self, session_id: str, options: RoomOptions) -> None:
        if self._rooms is not None:
            with tracing.step("session.room"):
                await self._rooms.create(session_id, self._settings.max_session_seconds, options)

    async def _traced_launch(
        self, launch: Callable[[LaunchSpec], Awaitable[LaunchResult]], spec: LaunchSpec
    ) -> LaunchResult:
        """A warm claim or a cold launch (the provider's calls are its children)."""
        with tracing.step("session.launch", **{"voicefleet.provider": self._machines.name}) as span:
            result = await launch(spec)
            span.set_attribute("voicefleet.launch", "warm" if result.claimed else "cold")
            return result

    async def _wait(self, machine: Machine) -> Machine:
        try:
            started = await self._machines.wait_started(machine.session_id, self._settings.start_wait_seconds)
            self.ends.observed(started)
            return self._with_transport(started, machine.transport)
        except WaitTimeout as exc:
            raise ApiError(
                504,
                "start_timeout",
                f"{exc.message}; it may still start: poll GET /sessions/{machine.session_id}",
                extra={"session_id": machine.session_id},
            ) from exc
        except ProviderError as exc:
            raise as_api_error(exc) from exc

    async def _clean_up(self, session_id: str, *, with_room: bool = True) -> None:
        """A start that failed half-way leaves nothing running: stop the machine, end the room.

        The machine is stopped before answering (it bills). The room is ended in the background:
        Daily allows about two deletes a second, and under a burst of failed starts waiting for
        them would hold every answer; an empty room costs nothing, expires on its own, and the
        reaper ends any that a crash left behind.
        """
        # Always: even a launch our own limiter refused may have sent an earlier call of its own.
        with contextlib.suppress(Exception):
            await self._machines.stop(session_id)
        if self._rooms is not None and with_room:
            task = asyncio.create_task(self._end_room_quietly(session_id), name=f"end-room-{session_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _end_room_quietly(self, session_id: str) -> None:
        assert self._rooms is not None
        try:
            await self._rooms.delete(session_id)
        except Exception as exc:
            log.warning("session %s: ending its room failed (the reaper will): %s", session_id, exc)

    async def aclose(self, grace_seconds: float = 5.0) -> None:
        """Give pending room clean-ups a moment, then drop them (the reaper finishes the job)."""
        await self._admission.aclose()
        for wait in list(self._waits.values()):
            wait.cancel()
        self.ends.close()  # the provider's close stops the bots next
        with contextlib.suppress(TimeoutError):  # an end under way is written with the timeline's last events
            await asyncio.wait_for(self.ends.settled(), grace_seconds)
        await self.timeline.aclose()
        if self._cold is not None:
            await self._cold.aclose()
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=grace_seconds)
            for task in pending:
                task.cancel()

    @staticmethod
    def _adopts(session: Session, events: list[dict[str, Any]]) -> bool:
        """A keyed retry answered with a machine its refused start's create made late: the start
        failed as a lost create does (`<provider>_unavailable`), and the machine runs. Not a start
        that failed with its machine (a `?wait=started` that timed out): its bot has its values."""
        outcomes = [e for e in events if e.get("event") in START_OUTCOMES]
        return (bool(outcomes) and outcomes[-1].get("event") == "failed"
                and str(outcomes[-1].get("code", "")).endswith("_unavailable") and session.machine.state.is_active)

    async def _adopt(self, session_id: str, session: Session, digest: str, body: Mapping[str, Any],
                     options: RoomOptions, transport: str, *, traceparent: str | None) -> None:
        """The session is on after all. Its bot's values, dropped when the start was refused, are held
        again for its hello (a cold bot has nothing else to go on), and the adoption is noted once, as a
        launch, so the lost create's watch (machines/lost_creates.py, `retried_since`) leaves it."""
        if self._cold is not None:
            grant = None if transport in ROOMLESS else await self._grant(session_id, options)
            await self._cold.hold(self._spec(session_id, digest, body, transport, grant, traceparent=traceparent))
            await self._cold.launched(session_id, LaunchResult(session.machine, created=True))
        self.timeline.note(session_id, "launched", machine_id=session.machine.machine_id,
                           provider=self._machines.name, created=False, adopted=True)

    async def _requested_since(self, session_id: str, since: float) -> bool:
        """Whether a start of the session was asked for, or a retry answered with its machine, after
        `since` (epoch seconds), at any replica (the store not answering raises: not known here)."""
        events = await self.timeline.read_shared(session_id)
        return any(e.get("event") in ("requested", "launched", "claimed") and float(e.get("at") or 0) > since
                   for e in events)

    async def get(self, session_id: str) -> Session | None:
        machine = self._with_transport(await self._call(self._machines.status(session_id)))
        if machine is None:
            # Not known here (another replica's bot that ended, a machine its provider forgot): the
            # deployment's record of it answers, as it does at every replica.
            events = await self.timeline.read(session_id)
            ended = await self.listing.ended(session_id, events)
            return await self._session(ended, None, events) if ended is not None else None
        self.ends.observed(machine)  # a machine that died unreported: a read may be the first to see it
        events = await self.timeline.read(session_id)
        machine = as_reported(machine, events)  # its bot said it ended: over, while its machine winds down
        rooms = self._rooms if machine.has_room else None
        if machine.state is MachineState.STARTED and rooms is not None:
            # "Machine started" is not "bot in room": presence tells the second.
            with contextlib.suppress(Exception):
                if await rooms.bot_present(session_id):
                    machine = replace(machine, state=MachineState.JOINED)
        # The room URL follows from the session id: no API call, and no token is made for it.
        room_url = None
        if rooms is not None and machine.state.is_active:
            room_url = await self._call(rooms.room_url(session_id))
        return await self._session(machine, room_url, events)

    async def _session(self, machine: Machine, room_url: str | None, events: list[dict[str, Any]]) -> Session:
        cost = await self.costs.of_session(machine.session_id, events, running=machine.state.is_active)
        return Session(machine, room_url=room_url, trace_id=trace_id_of(events), error=session_error(events),
                       cost=cost, eval=is_eval(events))

    async def _status(self, session_id: str) -> Machine | None:
        return await self._machines.status(session_id)

    async def ever_existed(self, session_id: str) -> bool:
        """Whether the session was ever started: its timeline has an event, or its provider knows it.
        A store that does not answer says nothing either way: True, so a real stop is never refused."""
        try:
            if await self.timeline.read(session_id):
                return True
        except StoreUnavailable:
            return True
        return await self._call(self._machines.status(session_id)) is not None

    async def stop(self, session_id: str, caller: str | None = None,
                   call_ended_at: float | None = None) -> Machine | None:
        """Stop the session's machine and end its room. None when there is nothing left to stop:
        the provider no longer knows the session (a deleted VM, a destroyed Fly machine that
        aged out) or never did. A machine the provider forgets as it stops counts as gone.
        `call_ended_at`: a clean-up after the session's call was over (epoch seconds: when its
        media ended), not a caller's stop; the stop says so, for the release judge."""
        # Read before the machine goes: whether there is a room to end is recorded with it (a deleted
        # VM has no labels left to read), and whether it still ran says whose doing its end is. A
        # provider's stop answers True for a machine already over, and its own read may be the first
        # to see a crash: that end is written after the stop, and only `machine_running` tells the
        # judge it was the bot's failure, not the caller's stop (sessions/release_outcome.py).
        before = self._with_transport(await self._call(self._machines.status(session_id)))
        self.ends.observed(before)  # a machine already over: its end is its own, written now
        asked_at = time.time()
        with self.ends.stopping(session_id):  # its machine's end, if seen meanwhile, is written after this stop
            stopped = await self._call(self._machines.stop(session_id))
            if stopped and await self._first_stop(session_id):
                # Recorded only for a session there was: a stop of an id that never started (any id a
                # key can tag) would otherwise write a timeline per call (docs/security.md, "Bounded").
                over = {} if call_ended_at is None else {"call_ended_at": round(call_ended_at, 3)}
                self.timeline.note(session_id, "stop_requested", at=asked_at,
                                   machine_running=before.state.is_active if before is not None else None, **over)
        if self._cold is not None:  # after the stop, which it must not delay: a bot not yet dialled never will
            await self._cold.forget(session_id)
        if not stopped:
            # Nothing was stopped: its start may still be under way (an Idempotency-Key tells a key
            # the id ahead), so the key's share keeps counting it until the lookup that finds a
            # key's ended sessions drops it (dispatcher/sessions/key_share.py).
            return None
        if caller is not None:  # its machine is stopped: the key's share has room again
            await self.share.forget(caller, session_id)
        if self.model_service is not None:  # a bot that never opened its stream frees its count now
            await self.model_service.stopped(session_id)
        self._admission.invalidate()
        if self._rooms is not None and not (before is not None and not before.has_room):
            await self._call(self._rooms.delete(session_id))
        return await self._call(self._machines.status(session_id))

    async def _first_stop(self, session_id: str) -> bool:
        """Whether this is the session's first stop, at any replica: only that one is noted
        (dispatcher/sessions/noted_once.py)."""
        return await self.noted_once.first(STOP_NOTED, session_id)

    async def wait_started(self, session_id: str) -> Machine:
        machine = await self._call(self._machines.status(session_id))
        if machine is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        return await self._shared_wait(machine)

    async def settle(self, machine: Machine, seconds: float, poll_seconds: float) -> None:
        """Returns when a `starting` session may have moved on, or after `seconds` (a long-poll's
        timeout, an event stream's step): it joins the one wait for the session here, bounded by
        its own `seconds`, so long-polls and streams cost the provider one wait however many."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            began = time.monotonic()
            try:
                await asyncio.wait_for(self._shared_wait(machine), left)  # shielded: the wait goes on
                return
            except TimeoutError:
                return
            except (ApiError, MachinesError):
                # The shared wait ended first (START_WAIT_SECONDS) or failed: the next one starts no
                # sooner than a poll's interval, so a provider failing fast is not asked in a loop.
                await asyncio.sleep(max(0.0, min(poll_seconds, left) - (time.monotonic() - began)))

    async def _shared_wait(self, machine: Machine) -> Machine:
        """`_wait`, once per session here however many wait for it (offers, `?wait=started`): on
        ECS and Compute Engine each wait polls the provider every second for up to
        START_WAIT_SECONDS, so one wait per request let a key's offers spend ~30 provider reads for
        each token of its read bucket. A later waiter joins the wait under way, and its deadline."""
        session_id = machine.session_id
        task = self._waits.get(session_id)
        if task is None:
            task = asyncio.create_task(self._wait(machine), name=f"wait-started-{session_id}")
            self._waits[session_id] = task
            task.add_done_callback(functools.partial(self._waited, session_id))
        # Shielded: a waiter that goes away does not end the wait the others share.
        return await asyncio.shield(task)

    def _waited(self, session_id: str, task: asyncio.Task[Machine]) -> None:
        if self._waits.get(session_id) is task:
            del self._waits[session_id]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone before it ended

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except ProviderError as exc:
            raise as_api_error(exc) from exc


