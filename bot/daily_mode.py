"""`--transport daily`: hand the user's bot the Daily room and its token, report, exit.

With `BOT_CHANNEL_URL` (a dispatcher runs it) the bot also reports on its control channel, and a
reserve bot (no session yet) waits there for the room and token of its one assignment. The user's
`bot()` builds its own `DailyTransport` from the `DailyRunnerArguments`, as under Pipecat's runner;
the host attaches to each Daily transport built in this process (one session: one room) to see the
join, the first participant and their leaving.

Imports Daily (and never aiortc). The token comes from `DAILY_TOKEN` in the cloud and is never
logged: pipecat logs the room URL only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from pipecat.transports.daily.transport import DailyTransport

from bot.channel_session import ChannelSession, await_session
from bot.config import BotConfig
from bot.events import EventWriter
from bot.lifecycle import EndReason, SessionLifecycle
from bot.runner_args import daily_arguments
from bot.user_bot import UserBot
from bot.user_session import UserBotSession
from bot.watch import SessionWatch
from bot.websocket_mode import CALL_CAPABILITY, CallMedia, call_capabilities, preload_in_background, run_call
from botchannel.transfer import DAILY_PERSON_USER


async def check(config: BotConfig, user_bot: UserBot, events: EventWriter) -> int:
    events.emit("checked", transport="daily", bot=str(user_bot.path))
    return 0


_on_transport: Callable[[DailyTransport], None] | None = None  # the session's: one per process


def watch_daily(on_transport: Callable[[DailyTransport], None]) -> None:
    """Calls `on_transport(transport)` for every `DailyTransport` built from now on (the class is
    patched once per process; a later callback replaces an earlier one)."""
    global _on_transport
    _on_transport = on_transport
    original = DailyTransport.__init__
    if getattr(original, "watched", False):
        return

    @functools.wraps(original)
    def init(transport: DailyTransport, *args: Any, **kwargs: Any) -> None:
        original(transport, *args, **kwargs)
        if _on_transport is not None:
            _on_transport(transport)

    init.watched = True  # type: ignore[attr-defined]
    DailyTransport.__init__ = init  # type: ignore[method-assign,assignment]


async def serve(config: BotConfig, user_bot: UserBot, events: EventWriter) -> SessionLifecycle:
    lifecycle = SessionLifecycle()
    watch = SessionWatch()
    watch.install()
    with lifecycle.signals_end_session():
        session = UserBotSession(user_bot, lifecycle, watch)
        channel: ChannelSession | None = None
        if config.channel is not None:
            # Run by a dispatcher: report on its channel; a reserve bot also waits there for its
            # one assignment (the room and its token), its bot imported and the VAD loaded.
            # A reserve bot takes a phone call too; a cold one serves the room it was launched for,
            # whose URL and token reach it the same way, as its assignment (no other handlers).
            media = CallMedia(config.channel.url)
            reserve = not config.channel.cold
            channel = ChannelSession(
                config, config.channel, events, lifecycle,
                capabilities=("daily", *call_capabilities()) if reserve else ("daily",),
                signalling=media.handlers if reserve else {},
            )  # fmt: skip
            if reserve:
                preload_in_background()
            assigned = await await_session(channel, config, watch)
            if assigned is None:
                return lifecycle
            config = assigned
            if config.transport == CALL_CAPABILITY:
                await run_call(config, session, channel, media, events)
                return lifecycle

        def attach(transport: DailyTransport) -> None:
            async def on_joined(transport: DailyTransport, data: dict[str, Any]) -> None:
                session.connected = True
                events.emit("joined")
                if channel is not None:
                    await channel.report("joined")

            async def on_error(transport: DailyTransport, error: str) -> None:
                # Before the join completes, any transport error means we are not getting in.
                if not session.connected:
                    lifecycle.end(EndReason.JOIN_FAILED, error)

            async def on_first_participant(transport: DailyTransport, participant: dict[str, Any]) -> None:
                connect_deadline.cancel()
                events.emit("connected", participant_id=participant.get("id"))

            async def on_participant_left(transport: DailyTransport, participant: dict[str, Any], reason: str) -> None:
                events.emit("disconnected", participant_id=participant.get("id"), reason=reason)
                if not _warm_transfers_person(participant):  # theirs ends the transfer, not the caller's call
                    lifecycle.end(EndReason.PARTICIPANT_LEFT)

            transport.add_event_handler("on_joined", on_joined)
            transport.add_event_handler("on_error", on_error)
            transport.add_event_handler("on_first_participant_joined", on_first_participant)
            transport.add_event_handler("on_participant_left", on_participant_left)

        watch_daily(attach)
        lifecycle.end_after(config.max_duration, EndReason.MAX_DURATION)
        connect_deadline = lifecycle.end_after(
            config.connect_timeout,
            EndReason.CONNECT_TIMEOUT,
            f"nobody joined within {config.connect_timeout:g}s",
        )
        assert config.room_url is not None  # load_config / the assignment guarantee it
        session.start(
            daily_arguments(
                config.room_url, config.token, body=config.body, session_id=config.session_id,
                idle_timeout=config.idle_timeout,
            )
        )  # fmt: skip
        if not lifecycle.ended:  # a signal during start-up: never announce a session that is over
            events.emit("ready", port=None, pid=os.getpid(), transport="daily")
            if channel is not None:
                await channel.report("ready")

        await lifecycle.wait()
        await session.stop()
        if channel is not None:
            reason = lifecycle.reason
            await channel.report("ended", reason=reason.value, exit_code=reason.exit_code, detail=lifecycle.detail)
            await channel.close()
    return lifecycle


def _warm_transfers_person(participant: dict[str, Any]) -> bool:
    """The person a warm transfer dialled into the room (its user id the dispatcher's): the dispatcher answers
    their leaving (the caller back with the bot, or, once bridged, the caller's leg ended with theirs)."""
    info = participant.get("info")
    user = info.get("userId") if isinstance(info, dict) else None
    return isinstance(user, str) and user.startswith(DAILY_PERSON_USER)
