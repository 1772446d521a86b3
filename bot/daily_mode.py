"""`--transport daily`: join the Daily room with the bot's token, talk to the user, exit.

With `BOT_CHANNEL_URL` (a dispatcher runs it) the bot also reports on its control channel, and a
reserve bot (no session yet) waits there for the room and token of its one assignment.

Imports Daily (and never aiortc). The token comes from `DAILY_TOKEN` in the cloud and is never
logged: pipecat logs the room URL only.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from pipecat.transports.daily.transport import DailyParams, DailyTransport

from bot.channel_session import ChannelSession, session_config
from bot.config import BotConfig
from bot.events import EventWriter
from bot.lifecycle import EndReason, SessionLifecycle
from bot.parrot import greeting_frame
from bot.pipelines import build_pipeline, load_vad
from bot.session import PipelineSession

BOT_NAME = "voicefleet bot"


def build_transport(config: BotConfig) -> DailyTransport:
    """Constructing the transport initialises the Daily client; it joins only when the pipeline starts."""
    if not config.room_url:
        raise ValueError("the daily transport needs a room URL")
    return DailyTransport(
        config.room_url,
        config.token,
        BOT_NAME,
        params=DailyParams(audio_in_enabled=True, audio_out_enabled=True, camera_out_enabled=False),
    )


# `--check` without a room URL: a reserved name that never resolves; the check never connects.
CHECK_ROOM_URL = "https://check.invalid/voicefleet"


async def check(config: BotConfig, events: EventWriter) -> int:
    vad = load_vad()
    build_pipeline(build_transport(replace(config, room_url=config.room_url or CHECK_ROOM_URL)), vad, config.services)
    events.emit("checked", transport="daily", pipeline=config.pipeline_name)
    return 0


async def serve(config: BotConfig, events: EventWriter) -> SessionLifecycle:
    lifecycle = SessionLifecycle()
    with lifecycle.signals_end_session():
        vad = load_vad()
        channel: ChannelSession | None = None
        if config.channel is not None:
            # Run by a dispatcher: report on its channel; a reserve bot also waits there for its
            # one assignment (the room and its token), imports done and VAD loaded.
            channel = ChannelSession(config, config.channel, events, lifecycle, capabilities=("daily",), signalling={})
            await channel.open()
            assignment = await channel.wait_assigned()
            if assignment is None:
                await channel.close()
                return lifecycle
            config = session_config(config, assignment)
        transport = build_transport(config)
        session = PipelineSession(
            build_pipeline(transport, vad, config.services), lifecycle, idle_timeout=config.idle_timeout
        )
        joined = False

        @transport.event_handler("on_joined")
        async def _on_joined(transport: DailyTransport, data: dict[str, Any]) -> None:
            nonlocal joined
            joined = True
            events.emit("joined")
            if channel is not None:
                await channel.report("joined")

        @transport.event_handler("on_error")
        async def _on_error(transport: DailyTransport, error: str) -> None:
            # Before the join completes, any transport error means we are not getting in.
            if not joined:
                lifecycle.end(EndReason.JOIN_FAILED, error)

        @transport.event_handler("on_first_participant_joined")
        async def _on_first_participant(transport: DailyTransport, participant: dict[str, Any]) -> None:
            connect_deadline.cancel()
            events.emit("connected", participant_id=participant.get("id"))
            if config.services is None:
                await session.worker.queue_frames([greeting_frame()])

        @transport.event_handler("on_participant_left")
        async def _on_participant_left(transport: DailyTransport, participant: dict[str, Any], reason: str) -> None:
            events.emit("disconnected", participant_id=participant.get("id"), reason=reason)
            lifecycle.end(EndReason.PARTICIPANT_LEFT)

        lifecycle.end_after(config.max_duration, EndReason.MAX_DURATION)
        connect_deadline = lifecycle.end_after(
            config.connect_timeout,
            EndReason.CONNECT_TIMEOUT,
            f"nobody joined within {config.connect_timeout:g}s",
        )
        await session.start()  # the join runs as the pipeline starts
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
