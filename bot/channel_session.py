"""One bot's life on the control channel: hello, wait for its one assignment, reports.

A reserve bot says hello with no session, sits ready (imports done, VAD loaded) and takes exactly
one `assign`, ever: another session's is refused with 409 `already_assigned`, whatever the
dispatcher thinks. Its first dial is tried again for ~2 min (a new task's network may be late);
then, until it is assigned, a dropped channel or `BOT_MAX_IDLE_SECONDS` ends it: an idle bot
nobody can reach is retired, never left running (a warm pool's bot, whose hello is its pod's identity
alone, first dials again for ~1 min: docs/kubernetes.md, "The warm path").

The one exception is a bot told `freeze`: its machine is about to be suspended with the process in
it (bot/frozen_watch.py). Its idle clock stops (the dispatcher ages frozen bots), and when its
channel drops (the dispatcher closes it once the machine is frozen; a resumed machine finds it
dead) it dials again at once with the same credential and says its idle hello again, warm as it
was. A bot the dispatcher does not expect back is refused, and then ends as any idle bot would.

A bot launched cold for a session names it in its hello, and the dispatcher answers with that
session's `assign`: its launch environment holds no session secret (no Daily token, TURN
credential or caller's `body`), so it builds no runner arguments before the assign has come. It
takes only its own session's. Its first dial is tried again on the reserve bot's schedule (its
task's network is just as new); if its channel drops first it dials again, and after
`BOT_CONNECT_TIMEOUT_SECONDS` without its values it ends (`channel_lost`, exit 3). The same assign sent again
(its answer was lost with the channel) is answered again. Signalling that overtakes the assign
waits for it a moment; otherwise requests before the assignment are refused (409 `not_assigned`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot import tracing
from bot.answered_by import heard_verdict
from bot.channel_client import BotChannel, ChannelError
from bot.config import BotConfig, ChannelSettings
from bot.events import EventWriter, tag_logs
from bot.frozen_watch import FrozenWatch
from bot.ice import CONFIG_VARIABLE, TURN_TRANSPORT_VARIABLE, IceSettings, ice_settings
from bot.identity import MachineIdentity
from bot.lifecycle import EndReason, SessionLifecycle
from bot.transfer import serve_transfers
from bot.warm_steps import warm_handler
from botchannel.answered_by import METHOD_ANSWERED_BY
from botchannel.contract import (
    CLOUD_RUN_EXECUTION_VARIABLE,
    FIRST_DIAL_DELAYS_SECONDS,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
    METHOD_ASSIGN,
    METHOD_FREEZE,
    METHOD_STOP,
    Assignment,
    Hello,
    RequestFailed,
)
from botchannel.transfer import METHOD_WARM_TRANSFER
from voicefleet_settings.read import setting_text

if TYPE_CHECKING:
    from bot.conversation import ConversationWatch
    from bot.recording.recorder import Recorder
    from bot.warm_speech import Queue, SpeechWatch
    from bot.watch import SessionWatch

RECONNECT_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # ~1 min, then the session goes on alone
# A thawed bot dials again at once; the dispatcher's claim waits for it only a few seconds.
THAW_REDIAL_DELAYS_SECONDS = (0.0, 0.2, 0.5, 1.0, 2.0)
SIGNALLING_WAIT_SECONDS = 10.0  # an offer that overtook a cold bot's assign waits this long for it
SignallingHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _redaction() -> tuple[Any, str | None]:
    """The team's redaction hook (RECORDING_REDACT), or why the transcript is withheld without it."""
    from bot.recording.redaction import RedactionError, resolve

    try:
        return resolve(os.environ), None
    except RedactionError as exc:
        logger.error(f"recording: {exc}; the transcript is not kept")
        return None, f"{exc}; the transcript was not kept"


def _watch() -> SessionWatch | None:
    from bot import watch

    return watch.current()


def _speech() -> tuple[SpeechWatch, Queue] | None:
    """The session's pipeline, to say a warm transfer's line into, once it runs."""
    session_watch = _watch()
    if session_watch is None or not session_watch.workers:
        return None
    return session_watch.speech, session_watch.queue


def machine_identity(env: Mapping[str, str]) -> tuple[str, str]:
    """(machine id, image) for the hello: the provider's own id where it gives one. A Kubernetes pod's
    is its name, its containers' hostname (`HOSTNAME`, as the container runtime sets it): a warm pool's
    bot has no other id (docs/kubernetes.md, "The warm path")."""
    pod = env.get("HOSTNAME") if setting_text(env, IDENTITY_VARIABLE) == "k8s" else None
    # FLY_MACHINE_ID, CLOUD_RUN_EXECUTION and HOSTNAME are the platforms' own, read as they set them.
    machine_id = (setting_text(env, MACHINE_ID_VARIABLE) or env.get("FLY_MACHINE_ID")
                  or env.get(CLOUD_RUN_EXECUTION_VARIABLE) or pod or socket.gethostname())
    return machine_id, setting_text(env, IMAGE_VARIABLE)


@dataclass
class ChannelSession:
    config: BotConfig
    settings: ChannelSettings
    events: EventWriter
    lifecycle: SessionLifecycle
    capabilities: tuple[str, ...]
    signalling: Mapping[str, SignallingHandler]

    def __post_init__(self) -> None:
        self.assignment: Assignment | None = None
        self._assigned = asyncio.Event()
        # Called with the assignment before anything waiting for it runs (the mode points its
        # signalling at the session's own ICE servers, so an offer waiting for it finds them).
        self.on_assigned: Callable[[Assignment], None] | None = None
        machine_id, image = machine_identity(os.environ)
        self.machine_id = machine_id
        cold = self.config.session_id if self.settings.cold else None
        handlers = {METHOD_ASSIGN: self._assign, METHOD_FREEZE: self._freeze, METHOD_STOP: self._stop,
                    METHOD_WARM_TRANSFER: warm_handler(_speech),  # a warm transfer's lines (bot/warm_speech.py)
                    METHOD_ANSWERED_BY: heard_verdict,  # who answered a call placed out (bot/answered_by.py)
                    **{m: self._guarded(h) for m, h in self.signalling.items()}}
        self.channel = BotChannel(
            self.settings.url,
            self.settings.token,
            Hello(machine_id=machine_id, image=image, capabilities=self.capabilities, session_id=cold),
            handlers,
            MachineIdentity(self.settings.identity, self.settings.url, os.environ),
            ca_file=self.settings.ca_file,
        )
        serve_transfers(self.channel.request)  # `transfer_call` (bot/transfer.py) asks on this channel
        self._serving: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_failure: str | None = None  # why the last dial failed (the failure report says it)
        self._frozen: FrozenWatch | None = None  # told `freeze`, not yet back on the channel
        self.recorder: Recorder | None = None  # the session's, when its assignment asks for a recording
        self.conversation: ConversationWatch | None = None  # every session's, recorded or not
        self._usage_reports: asyncio.Task[None] | None = None  # its services' use so far, sent during the call

    async def open(self) -> None:
        """Dials the dispatcher. A reserve bot waits there for its session; a cold bot for its
        session's values: without the channel neither has anything to serve. Until it has reached
        the dispatcher once, either dials on the first-dial schedule (`_first_dial`), a cold bot
        within its connect timeout; after that, a dropped channel is dialled on the reconnect one."""
        if self.settings.cold:  # its values count against the time it has for its peer to connect
            wait = self.config.connect_timeout
            self._idle_timer = self.lifecycle.end_after(wait, EndReason.CHANNEL_LOST, lambda: self._late(wait))
        if not await self._first_dial():
            if self.settings.cold:
                self._values_out_of_reach()
            else:
                self.lifecycle.end(EndReason.CHANNEL_LOST, self._last_failure)
            return
        self._serving = asyncio.create_task(self._serve(), name="bot-channel")
        if not self.settings.cold:
            self.events.emit("idle", machine_id=self.machine_id, pid=os.getpid())
            self._start_idle_clock()

    async def _first_dial(self) -> bool:
        """True once welcomed. A new task's network may not carry traffic yet (Cloud Run's Direct
        VPC egress with Cloud NAT can take a minute and more), cold bot or reserve alike: dial again
        for ~2 min, unless the dispatcher said no or the machine's identity source, already tried
        again, gave no token."""
        try:
            await self.channel.connect()
        except ChannelError as exc:
            logger.warning(f"first dial failed: {exc}")
            self._last_failure = str(exc)
            if exc.refused or exc.unproven:
                return False
            return await self._dial_again(FIRST_DIAL_DELAYS_SECONDS, "first dial", until_refused=True)
        return True

    def _start_idle_clock(self) -> None:
        self._idle_timer = self.lifecycle.end_after(
            self.settings.max_idle_seconds, EndReason.RESERVE_EXPIRED, "idle past BOT_MAX_IDLE_SECONDS"
        )

    async def wait_assigned(self) -> Assignment | None:
        """The session this bot serves, or None if it ended (retired, channel lost) first."""
        ended = asyncio.ensure_future(self.lifecycle.wait())
        assigned = asyncio.ensure_future(self._assigned.wait())
        try:
            await asyncio.wait({ended, assigned}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            assigned.cancel()
        return self.assignment if not self.lifecycle.ended else None

    async def report(self, event: str, **fields: Any) -> None:
        if self.assignment is not None:
            if event == "ended" and self._usage_reports is not None:  # the end carries the whole use
                self._usage_reports.cancel()
            if event == "ended" and self.recorder is not None:  # its last part is kept before the end is told
                recorder, self.recorder = self.recorder, None
                await recorder.finish()
            if event == "ended" and (session_watch := _watch()) is not None:  # what its services used
                fields["usage"] = tuple(session_watch.usage.report())
                if session_watch.transport is not None:  # a WebRTC call: its relay's share (transport_meter.py)
                    fields["transport"] = await session_watch.transport.report()
            if event == "ended" and self.conversation is not None:
                fields["conversation"] = self.conversation.figures(fields.get("reason"))
            tracing.SESSION.reported(event, fields)
            await self.channel.report(event, self.assignment.session_id, **fields)
            if event == "ended":  # the session's span is complete: send it while the channel holds
                await tracing.flush_ended_session()

    async def close(self) -> None:
        if self._frozen is not None:
            self._frozen.stop()
        if self._usage_reports is not None:
            self._usage_reports.cancel()
        await self.channel.close()
        if self._serving is not None:
            await asyncio.wait([self._serving], timeout=2)

    async def _serve(self) -> None:
        while True:
            await self.channel.serve()
            if self.lifecycle.ended:
                return
            if self._frozen is not None and self.assignment is None:
                if await self._thawed():
                    continue
                detail = "not taken back on the channel after a freeze"
                why = f"{detail}: {self._last_failure}" if self._last_failure else detail
                self.lifecycle.end(EndReason.CHANNEL_LOST, why)
                return
            if self.assignment is None and not self.settings.cold:
                # An idle pool bot (its pod's identity alone) is admitted again after a drop (a dispatcher
                # rollout): it dials again for ~1 min, then exits. An idle reserve bot's credential is
                # spent: without its channel it can never be claimed, so it retires at once.
                if self._pool_bot() and await self._dial_again(RECONNECT_DELAYS_SECONDS, "idle pool bot re-dial",
                                                               until_refused=True):
                    continue
                self.lifecycle.end(EndReason.CHANNEL_LOST, "the dispatcher closed the channel before an assignment")
                return
            # The session's media does not need the channel; signalling and reports do, and a cold
            # bot's values come over it. Dial again (a dispatcher restart or deploy, another
            # replica behind the same address), saying which session this is, so the dispatcher
            # routes it again (and sends values it has not taken yet); the session goes on meanwhile.
            logger.warning("channel lost; reconnecting")
            if not await self._reconnect():
                if self.assignment is None:
                    self._values_out_of_reach()
                else:
                    logger.warning("could not reconnect the channel; the session goes on without it")
                return

    def _pool_bot(self) -> bool:
        """A warm pool's bot: no credential of its own, its pod's identity in every hello."""
        return not self.settings.token and self.settings.identity == "k8s"

    async def _reconnect(self) -> bool:
        session_id = self.assignment.session_id if self.assignment is not None else self.channel.hello.session_id
        self.channel.hello = replace(self.channel.hello, session_id=session_id)
        return await self._dial_again(RECONNECT_DELAYS_SECONDS, "channel reconnect")

    async def _dial_again(self, delays: tuple[float, ...], what: str, *, until_refused: bool = False) -> bool:
        """Dials after each delay until welcomed (True) or the delays or the bot's life run out.
        Each dial fetches a fresh identity token (bot/channel_client.py): tokens expire. The
        schedule is logged, so an operator (and a test) sees which one a bot follows."""
        logger.info(f"{what}: dialling again after {', '.join(f'{d:g}' for d in delays)} s")
        for delay in delays:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lifecycle.wait(), delay)  # backoff, unless the bot ends
            if self.lifecycle.ended:
                return False
            try:
                await self.channel.connect()
            except ChannelError as exc:
                logger.info(f"{what} failed: {exc}")
                self._last_failure = str(exc)
                if until_refused and exc.refused:
                    return False
                continue
            return True
        return False

    def _values_out_of_reach(self) -> None:
        detail = "cannot reach the dispatcher for the session's values"
        self.lifecycle.end(EndReason.CHANNEL_LOST, f"{detail}: {self._last_failure}")

    def _late(self, waited: float) -> str:
        detail = f"its session's values did not arrive over the channel within {waited:g}s"
        return f"{detail}; the last dial: {self._last_failure}" if self._last_failure else detail

    async def _stop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The dispatcher ends this session where the platform cannot stop the machine (Cerebrium)."""
        self.lifecycle.end(EndReason.SIGNAL, "stopped by the dispatcher")
        return {}

    async def _freeze(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Its machine is about to be frozen: stop the idle clock, watch for the resume."""
        if self.assignment is not None or self.settings.cold:
            raise RequestFailed(409, "not_idle", "only an idle reserve bot is frozen")
        if self.lifecycle.ended:
            raise RequestFailed(410, "bot_ending", "this bot is shutting down")
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._frozen is None:
            self._frozen = FrozenWatch(self.channel)
        return {"machine_id": self.machine_id}

    async def _thawed(self) -> bool:
        """Back from a freeze: the same idle hello on a new channel, at once; True if welcomed."""
        assert self._frozen is not None
        self._frozen.stop()
        logger.info("channel dropped while frozen; dialling again")
        if not await self._dial_again(THAW_REDIAL_DELAYS_SECONDS, "re-dial after a freeze"):
            return False
        self._frozen = None
        self.events.emit("idle", machine_id=self.machine_id, pid=os.getpid())
        self._start_idle_clock()
        return True

    async def _assign(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.assignment is not None:
            if params.get("session_id") == self.assignment.session_id:  # sent again: its answer was lost
                return {"session_id": self.assignment.session_id, "machine_id": self.machine_id}
            raise RequestFailed(409, "already_assigned", "this bot serves exactly one session, ever")
        if self.lifecycle.ended:
            raise RequestFailed(410, "bot_ending", "this bot is shutting down")
        assignment = Assignment.from_params(params)
        if self.settings.cold and assignment.session_id != self.config.session_id:
            raise RequestFailed(409, "not_its_session", "this bot was launched for another session")
        try:
            if assignment.transport not in self.capabilities:
                raise RequestFailed(400, "unsupported_transport", f"this bot cannot serve {assignment.transport}")
            assigned_ice(self.config, assignment)  # a bad ICE config is refused here, not found later
        except RequestFailed as exc:
            if self.settings.cold:  # its own session's values, unusable: nothing else will come
                self.lifecycle.end(EndReason.ERROR, f"its session's values were refused: {exc.message}")
            raise
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._take(assignment)
        return {"session_id": assignment.session_id, "machine_id": self.machine_id}

    def _take(self, assignment: Assignment) -> None:
        self.assignment = assignment
        self.events.session_id = assignment.session_id
        tag_logs(assignment.session_id)
        tracing.SESSION.assigned(assignment)
        if assignment.recording is not None:
            self._record(assignment)
        self._report_usage()
        if self.on_assigned is not None:
            self.on_assigned(assignment)
        self._assigned.set()

    def _report_usage(self) -> None:
        """Sends the services' use so far during the call (bot/usage_reports.py). The watch is looked
        up at each turn, never imported here: an idle bot that has not loaded Pipecat yet answers its
        assignment at once (the import is the session's, later)."""
        from bot.usage_reports import report_usage, transport_so_far, used_so_far

        with contextlib.suppress(RuntimeError):  # no loop: nothing to send from
            self._usage_reports = asyncio.get_running_loop().create_task(
                report_usage(self.channel.request, used_so_far, transport_so_far), name="usage-reports")

    def _record(self, assignment: Assignment) -> None:
        """Starts the session's recorder and taps every pipeline the user's bot builds from now on
        (imported here: a bot that records nothing never loads it). A `consent` session's
        announcement is played first (bot/recording/consent.py); one that cannot be loaded leaves the
        session unrecorded, and the report says why."""
        from bot import watch
        from bot.recording.recorder import Recorder
        from bot.recording.uploader import http_base

        session_watch = watch.current()
        plan = assignment.recording
        if plan is None or session_watch is None:
            return
        redact, withheld = _redaction()
        try:
            self.recorder = Recorder(plan, self.channel.request, http_base(self.settings.url), redact=redact,
                                     transcript_why=withheld)
        except Exception:  # the call matters more than its recording: it runs unrecorded (the dispatcher says so)
            logger.exception("the recorder could not start; this session is not recorded")
            return
        session_watch.observers.append(self.recorder.tap)
        if plan.consent:
            self._announce(session_watch, self.recorder)

    def _announce(self, session_watch: SessionWatch, recorder: Recorder) -> None:
        from bot.recording.announcement import AnnouncementError, announcement_path, load_announcement
        from bot.recording.consent import ConsentAnnouncer
        from botchannel.recording import METHOD_RECORDING_CONSENT

        try:
            announcement = load_announcement(announcement_path(os.environ, Path(self.config.bot_file).parent))
        except AnnouncementError as exc:  # never announced, so never recorded: the report says why
            logger.error(f"recording: {exc}; this session is not recorded")
            recorder.withhold(f"not recorded: the consent announcement cannot be played: {exc}")
            return

        def announced(at: float, seconds: float) -> None:
            recorder.consented()
            task = asyncio.get_running_loop().create_task(self.channel.request(
                METHOD_RECORDING_CONSENT, {"announced_at": round(at, 3), "seconds": round(seconds, 3)}, 5.0))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())

        session_watch.observers.append(ConsentAnnouncer(announcement, announced))

    def _guarded(self, handler: SignallingHandler) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
        async def guarded(params: Mapping[str, Any]) -> dict[str, Any]:
            if self.assignment is None and self.settings.cold:
                # Its values are on their way: the dispatcher sends them at the hello, and an
                # offer for the session can overtake them.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wait_assigned(), SIGNALLING_WAIT_SECONDS)
            if self.assignment is None:
                raise RequestFailed(409, "not_assigned", "this bot has no session yet")
            return await handler(dict(params))

        return guarded


async def await_session(channel: ChannelSession, config: BotConfig, watch: Any) -> BotConfig | None:
    """Opens the channel (first audio reported on it) and waits for this bot's one session: the
    session's configuration, or None, the channel closed, when the bot ended before one came."""
    report_first_audio(watch, channel)
    await channel.open()
    assignment = await channel.wait_assigned()
    if assignment is None:
        await channel.close()
        return None
    return session_config(config, assignment)


def session_config(config: BotConfig, assignment: Assignment) -> BotConfig:
    """The bot's configuration for the session it was assigned (the idle bot's had none)."""
    return replace(
        config,
        session_id=assignment.session_id,
        max_duration=float(assignment.max_session_seconds),
        body=dict(assignment.body),
        room_url=assignment.room_url,
        token=assignment.token,
        ice=assigned_ice(config, assignment),
        # The mode's capabilities admitted it (`_assign`): one of the host's transports.
        transport=assignment.transport,  # type: ignore[arg-type]
    )


def assigned_ice(config: BotConfig, assignment: Assignment) -> IceSettings:
    """The assignment's ICE servers (its own TURN credentials) replace the idle bot's; none: kept."""
    if assignment.ice_config is None:
        return config.ice
    try:
        own = {TURN_TRANSPORT_VARIABLE: os.environ.get(TURN_TRANSPORT_VARIABLE, "")}  # the machine's, not the session's
        return ice_settings({CONFIG_VARIABLE: json.dumps(dict(assignment.ice_config)), **own})
    except ValueError as exc:
        raise RequestFailed(400, "invalid_ice_config", str(exc)) from None


def report_first_audio(watch: SessionWatch, channel: ChannelSession) -> None:
    """Reports `first_audio` when the bot's speech starts playing to the caller (bot.watch), each
    pipeline error as `error` (the dispatcher shows it in the session's timeline and status), a
    converged model's slow answer as `slow_answer` (bot/slow_answer.py), and the conversation's
    figures with the session's end."""

    async def first_audio() -> None:
        await channel.report("first_audio")

    async def error(reason: str, detail: str) -> None:
        await channel.report("error", reason=reason, detail=detail)

    async def slow_answer(detail: str) -> None:
        await channel.report("slow_answer", detail=detail)

    watch.on_first_audio = first_audio
    watch.on_error = error
    watch.slow.on_slow = slow_answer
    observe_conversation(watch, channel)


def observe_conversation(watch: SessionWatch, channel: ChannelSession) -> None:
    """Watches the call's turns in every pipeline the user's bot builds, recorded or not, for the
    figures the session's `ended` report carries (bot/conversation.py; Pipecat is loaded with the watch)."""
    from bot.conversation import ConversationWatch

    channel.conversation = ConversationWatch()
    watch.observers.append(channel.conversation)
