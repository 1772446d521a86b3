"""`--transport webrtc`: take SmallWebRTC signalling, run the user's bot for the one peer, exit.

Signalling arrives over the control channel the bot dialled (bot/channel_session.py) when a
dispatcher runs it, so the bot listens on nothing; a bot run by hand without `BOT_CHANNEL_URL`
serves the same signalling over HTTP on `--host`/`--port` instead.

The offer is answered the way Pipecat's runner answers it (a `SmallWebRTCConnection` initialised
with the offer), then the user's `bot()` gets `SmallWebRTCRunnerArguments` for that connection.
Import cost is part of the product (start-up time): this module imports the SmallWebRTC
transport (aiortc) at the top, and the user's file was imported before, so once `ready` is printed
an offer is answered with no further imports.
"""

from __future__ import annotations

import os

from aiortc.rtcdtlstransport import RTCCertificate
from loguru import logger

# What Pipecat's `create_transport` imports inside the user's bot() for a WebRTC session: imported
# here, before `ready`, so it is not on the first offer's path.
from pipecat.transports.smallwebrtc import transport as _smallwebrtc_transport  # noqa: F401
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot.channel_session import ChannelSession, assigned_ice, report_first_audio, session_config
from bot.config import BotConfig, ConfigError
from bot.connection_end import ClosedHere, consent_end
from bot.events import EventWriter
from bot.ice import loopback_requested, use_loopback_candidates
from bot.ice_consent import install as answer_late_consent_checks
from bot.ice_consent import lost_consent
from bot.jitter import audio_prefetch, install
from bot.lazy_imports import materialized
from bot.lifecycle import EndReason, SessionLifecycle
from bot.output_pacing import SpeechEnd
from bot.output_pacing import install as keep_output_in_real_time
from bot.runner_args import webrtc_arguments
from bot.signalling import SignallingServer
from bot.start_hold import report_first_step
from bot.transport_meter import TransportMeter
from bot.user_bot import UserBot
from bot.user_session import UserBotSession
from bot.watch import SessionWatch
from bot.websocket_mode import CALL_CAPABILITY, CallMedia, call_capabilities, preload_in_background, run_call
from botchannel.contract import METHOD_ICE, METHOD_OFFER, Assignment


def prepare_to_answer() -> None:
    """What answering an offer needs beyond the imports, loaded before `ready` is announced:
    aiortc's certificate code. Each peer connection makes its own DTLS certificate, and the first
    one imports cryptography's OpenSSL backend and key serialization, which would otherwise happen
    on the first offer's path (tests/bot/test_ready_answers_at_once.py)."""
    RTCCertificate.generateCertificate()


async def check(config: BotConfig, user_bot: UserBot, events: EventWriter) -> int:
    """Everything a session needs is imported and loaded, without a peer and without the network."""
    prepare_to_answer()
    connection = SmallWebRTCConnection()  # an unanswered peer connection: no sockets until an offer
    await connection.disconnect()
    events.emit("checked", transport="webrtc", bot=str(user_bot.path))
    return 0


async def serve(config: BotConfig, user_bot: UserBot, events: EventWriter) -> SessionLifecycle:
    if loopback_requested(os.environ):
        use_loopback_candidates()
    answer_late_consent_checks()
    try:
        prefetch = audio_prefetch(os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    lifecycle = SessionLifecycle()
    watch = SessionWatch()
    watch.install()
    meter = watch.transport = TransportMeter()  # the call's ICE pair and bytes, for its relay's cost
    keep_output_in_real_time()
    watch.observers.append(SpeechEnd())  # the output's hold ends with the bot's speech
    with lifecycle.signals_end_session():
        prepare_to_answer()
        session = UserBotSession(user_bot, lifecycle, watch)
        channel: ChannelSession | None = None
        port = 0

        async def on_connection(connection: SmallWebRTCConnection) -> None:
            # The answer is set, so the receivers exist, and no media has flowed yet.
            install(connection.pc, prefetch)
            closed_here = ClosedHere(lifecycle)
            closed_here.watch(connection)

            @connection.event_handler("connected")
            async def _on_connected(connection: SmallWebRTCConnection) -> None:
                # Fired once the bot's transport connected to the peer (and again on a renegotiation).
                install(connection.pc, prefetch)  # a restart_pc renegotiation made new receivers
                meter.follow(connection.pc)
                if session.connected:
                    return
                session.connected = True
                connect_deadline.cancel()
                server.state = "connected"
                # Keys only: values may be private.
                events.emit("connected", pc_id=connection.pc_id, body_keys=sorted(session_body()))
                if channel is not None:
                    await channel.report("joined")

            @connection.event_handler("closed")
            async def _on_closed(connection: SmallWebRTCConnection) -> None:
                events.emit("disconnected", pc_id=connection.pc_id)
                if (lost := lost_consent(connection.pc)) is not None:  # neither side closed it: the caller is told so
                    conversation = channel.conversation if channel is not None else None
                    lifecycle.end(*consent_end(lost, conversation.lag.own_blocks if conversation else None))
                elif closed_here.closed:
                    lifecycle.end(EndReason.BOT_CLOSED)
                elif session.connected:
                    lifecycle.end(EndReason.PEER_DISCONNECTED)
                else:
                    lifecycle.end(EndReason.CONNECT_FAILED, "the peer connection closed before it was up")

            session.start(
                webrtc_arguments(
                    connection, body=session_body(), session_id=config.session_id, idle_timeout=config.idle_timeout
                )
            )
            report_first_step(str(user_bot.path))  # what the user's start held the connect for

        def session_body() -> dict[str, object]:
            # The offer's `requestData` when it carried one (as Pipecat's runner has it), else the
            # start request's `body` (cached by the dispatcher, as Pipecat Cloud does).
            return dict(server.request_data if server.request_data is not None else config.body)

        server = SignallingServer(
            session_id=config.session_id,
            on_connection=on_connection,
            ice=config.ice,
        )
        if config.channel is not None:
            # Run by a dispatcher: dial it, listen on nothing; signalling arrives on the channel.
            media = CallMedia(config.channel.url)  # a reserve bot takes a phone call too
            channel = ChannelSession(
                config, config.channel, events, lifecycle, capabilities=("webrtc", *call_capabilities()),
                signalling={METHOD_OFFER: server.offer, METHOD_ICE: server.patch, **media.handlers},
            )
            base = config

            def point_signalling(assignment: Assignment) -> None:  # before a waiting offer is answered
                server.session_id = assignment.session_id
                server.ice = assigned_ice(base, assignment)  # its own TURN credentials come with it

            channel.on_assigned = point_signalling
            report_first_audio(watch, channel)
            await channel.open()
            if not config.channel.cold:
                preload_in_background()
            assignment = await channel.wait_assigned()
            if assignment is not None:
                config = session_config(config, assignment)
                if config.transport == CALL_CAPABILITY:
                    await run_call(config, session, channel, media, events)
                    await server.close()
                    return lifecycle
                server.session_id = config.session_id
                server.ice = config.ice  # its own TURN credentials arrive with the session
        else:
            try:
                port = await server.start(config.host, config.port)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
            logger.info(f"webrtc signalling on http://{config.host}:{port}/api/offer")
        lifecycle.end_after(config.max_duration, EndReason.MAX_DURATION)
        connect_deadline = lifecycle.end_after(
            config.connect_timeout,
            EndReason.CONNECT_TIMEOUT,
            f"no peer connected within {config.connect_timeout:g}s",
        )
        if not lifecycle.ended:  # a signal during start-up: never announce a session that is over
            if channel is None:
                events.emit("ready", port=port, pid=os.getpid(), transport="webrtc")
            else:
                events.emit("ready", pid=os.getpid(), transport="webrtc", machine_id=channel.machine_id)
                await channel.report("ready")

        await lifecycle.wait()
        server.state = "ended"
        await session.stop()
        await server.close()
        if channel is not None:
            reason = lifecycle.reason
            await channel.report("ended", reason=reason.value, exit_code=reason.exit_code, detail=lifecycle.detail)
            await channel.close()
    logger.debug(f"deferred modules this session needed: {materialized() or 'none'}")
    return lifecycle

