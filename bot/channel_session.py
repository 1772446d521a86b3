"""One bot's life on the control channel: hello, (wait for) its one assignment, reports.

A bot launched cold for a session says so in its hello and is assigned from its environment. A
reserve bot says hello with no session, sits ready (imports done, VAD loaded) and takes exactly
one `assign`, ever: a second one is refused with 409 `already_assigned`, whatever the dispatcher
thinks. Until it is assigned, a dropped channel or `BOT_MAX_IDLE_SECONDS` ends it: an idle bot
nobody can reach is retired, never left running. Signalling requests before the assignment are
refused (409 `not_assigned`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.channel_client import BotChannel, ChannelError
from bot.config import BotConfig, ChannelSettings
from bot.events import EventWriter
from bot.ice import CONFIG_VARIABLE, IceSettings, ice_settings
from bot.lifecycle import EndReason, SessionLifecycle
from botchannel.contract import (
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
    METHOD_ASSIGN,
    Assignment,
    Hello,
    RequestFailed,
)

if TYPE_CHECKING:
    from bot.watch import SessionWatch

RECONNECT_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # ~1 min, then the session goes on alone
SignallingHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def machine_identity(env: Mapping[str, str]) -> tuple[str, str]:
    """(machine id, image) for the hello: the provider's own id where it gives one."""
    machine_id = env.get(MACHINE_ID_VARIABLE) or env.get("FLY_MACHINE_ID") or socket.gethostname()
    return machine_id, env.get(IMAGE_VARIABLE) or "dev"


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
        machine_id, image = machine_identity(os.environ)
        self.machine_id = machine_id
        cold = self.config.session_id if self.settings.cold else None
        handlers = {METHOD_ASSIGN: self._assign, **{m: self._guarded(h) for m, h in self.signalling.items()}}
        self.channel = BotChannel(
            self.settings.url,
            self.settings.token,
            Hello(machine_id=machine_id, image=image, capabilities=self.capabilities, session_id=cold),
            handlers,
        )
        self._serving: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        """Dials the dispatcher. A bot that needs the channel (a reserve bot waits there for its
        session, a WebRTC bot for its offer) has nothing to do without it; a cold Daily bot has its
        room and token already, so only its reports wait: the channel is never a new way to fail."""
        try:
            await self.channel.connect()
        except ChannelError as exc:
            if not self.settings.cold or self.signalling:
                self.lifecycle.end(EndReason.CHANNEL_LOST, str(exc))
                return
            logger.warning(f"{exc}; the session goes on without its channel, which is dialled again")
            self._take(self._cold_assignment())
            self._serving = asyncio.create_task(self._redial(), name="bot-channel")
            return
        self._serving = asyncio.create_task(self._serve(), name="bot-channel")
        if self.settings.cold:
            self._take(self._cold_assignment())
        else:
            self.events.emit("idle", machine_id=self.machine_id, pid=os.getpid())
            self._idle_timer = self.lifecycle.end_after(
                self.settings.max_idle_seconds, EndReason.RESERVE_EXPIRED, "idle past BOT_MAX_IDLE_SECONDS"
            )

    def _cold_assignment(self) -> Assignment:
        return Assignment(
            session_id=self.config.session_id,
            max_session_seconds=int(self.config.max_duration),
            transport=self.config.transport,
            body=self.config.body,
            room_url=self.config.room_url,
            token=self.config.token,
        )

    async def _redial(self) -> None:
        if await self._reconnect():
            await self._serve()

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
            await self.channel.report(event, self.assignment.session_id, **fields)

    async def close(self) -> None:
        await self.channel.close()
        if self._serving is not None:
            await asyncio.wait([self._serving], timeout=2)

    async def _serve(self) -> None:
        await self.channel.serve()
        while not self.lifecycle.ended:
            if self.assignment is None:
                # An idle bot without its channel can never be claimed: retire it.
                self.lifecycle.end(EndReason.CHANNEL_LOST, "the dispatcher closed the channel before an assignment")
                return
            # The session's media does not need the channel; signalling and reports do. Dial again
            # (a dispatcher restart or deploy, another replica behind the same address), saying
            # which session this is, so the dispatcher routes it again; the session goes on meanwhile.
            logger.warning("channel lost during the session; reconnecting")
            if not await self._reconnect():
                logger.warning("could not reconnect the channel; the session goes on without it")
                return
            await self.channel.serve()

    async def _reconnect(self) -> bool:
        assert self.assignment is not None
        self.channel.hello = replace(self.channel.hello, session_id=self.assignment.session_id)
        for delay in RECONNECT_DELAYS_SECONDS:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lifecycle.wait(), delay)  # backoff, unless the session ends
            if self.lifecycle.ended:
                return False
            try:
                await self.channel.connect()
            except ChannelError as exc:
                logger.info(f"channel reconnect failed: {exc}")
                continue
            return True
        return False

    async def _assign(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.assignment is not None:
            raise RequestFailed(409, "already_assigned", "this bot serves exactly one session, ever")
        if self.lifecycle.ended:
            raise RequestFailed(410, "bot_ending", "this bot is shutting down")
        assignment = Assignment.from_params(params)
        if assignment.transport not in self.capabilities:
            raise RequestFailed(400, "unsupported_transport", f"this bot cannot serve {assignment.transport}")
        assigned_ice(self.config, assignment)  # a bad ICE config is refused here, not found later
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._take(assignment)
        return {"session_id": assignment.session_id, "machine_id": self.machine_id}

    def _take(self, assignment: Assignment) -> None:
        self.assignment = assignment
        self.events.session_id = assignment.session_id
        self._assigned.set()

    def _guarded(self, handler: SignallingHandler) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
        async def guarded(params: Mapping[str, Any]) -> dict[str, Any]:
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
        return ice_settings({CONFIG_VARIABLE: json.dumps(dict(assignment.ice_config))})
    except ValueError as exc:
        raise RequestFailed(400, "invalid_ice_config", str(exc)) from None


def report_first_audio(watch: SessionWatch, channel: ChannelSession) -> None:
    """Reports `first_audio` when the bot's speech starts playing to the caller (bot.watch)."""

    async def first_audio() -> None:
        await channel.report("first_audio")

    watch.on_first_audio = first_audio
