"""`--transport webrtc`: take SmallWebRTC signalling, run the pipeline for the one peer, exit.

Signalling arrives over the control channel the bot dialled (bot/channel_session.py) when a
dispatcher runs it, so the bot listens on nothing; a bot run by hand without `BOT_CHANNEL_URL`
serves the same signalling over HTTP on `--host`/`--port` instead.

Import cost is part of the product (start-up time): this module imports the SmallWebRTC
transport (aiortc) and the pipeline modules at the top, so once `ready` is printed an offer is
answered with no further imports. It never imports Daily.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aiortc.rtcdtlstransport import RTCCertificate
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from bot.channel_session import ChannelSession, report_first_audio, session_config
from bot.config import BotConfig, ConfigError
from bot.events import EventWriter
from bot.ice import loopback_requested, use_loopback_candidates
from bot.jitter import BotAudioJitterBuffer, audio_prefetch, install
from bot.lazy_imports import materialized
from bot.lifecycle import EndReason, SessionLifecycle
from bot.parrot import greeting_frame
from bot.pipelines import build_pipeline, load_vad
from bot.session import PipelineSession
from bot.signalling import SignallingServer
from bot.trace import Tracer
from botchannel.contract import METHOD_ICE, METHOD_OFFER

if TYPE_CHECKING:
    from pipecat.audio.vad.silero import SileroVADAnalyzer


def build_transport(connection: SmallWebRTCConnection) -> SmallWebRTCTransport:
    return SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    )


def prepare_to_answer() -> SileroVADAnalyzer:
    """What answering an offer needs beyond the imports, loaded before `ready` is announced: the
    VAD, and aiortc's certificate code. Each peer connection makes its own DTLS certificate, and
    the first one imports cryptography's OpenSSL backend and key serialization, which would
    otherwise happen on the first offer's path (tests/bot/test_ready_answers_at_once.py)."""
    vad = load_vad()
    RTCCertificate.generateCertificate()
    return vad


async def check(config: BotConfig, events: EventWriter) -> int:
    """Builds everything a session needs, without a peer and without the network."""
    vad = prepare_to_answer()
    connection = SmallWebRTCConnection()  # an unanswered peer connection: no sockets until an offer
    build_pipeline(build_transport(connection), vad, config.services)
    await connection.disconnect()
    events.emit("checked", transport="webrtc", pipeline=config.pipeline_name)
    return 0


async def serve(config: BotConfig, events: EventWriter) -> SessionLifecycle:
    if loopback_requested(os.environ):
        use_loopback_candidates()
    try:
        prefetch = audio_prefetch(os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tracer = Tracer.from_env(os.environ)
    if tracer is not None:
        tracer.patch_output_track()
    # A timed buffer when tracing. Chosen here so bot.jitter need not know the tracer (which
    # builds on bot.jitter): no import cycle.
    buffer_class = tracer.jitter_buffer_class() if tracer is not None else BotAudioJitterBuffer
    lifecycle = SessionLifecycle()
    with lifecycle.signals_end_session():
        vad = prepare_to_answer()
        if tracer is not None:
            tracer.watch_vad(vad)
        session: PipelineSession | None = None
        connected = False
        channel: ChannelSession | None = None
        port = 0

        async def on_connection(connection: SmallWebRTCConnection) -> None:
            nonlocal session
            # The answer is set, so the receivers exist, and no media has flowed yet.
            install(connection.pc, prefetch, buffer_class)
            transport = build_transport(connection)
            session = PipelineSession(
                build_pipeline(transport, vad, config.services, tracer), lifecycle, idle_timeout=config.idle_timeout
            )
            if channel is not None:
                report_first_audio(session.worker, channel)

            @transport.event_handler("on_client_connected")
            async def _on_connected(transport: object, client: SmallWebRTCConnection) -> None:
                nonlocal connected
                connected = True
                # A renegotiation with restart_pc builds a new peer connection: its receivers too.
                install(client.pc, prefetch, buffer_class)
                connect_deadline.cancel()
                server.state = "connected"
                # The session's data: the offer's `requestData` when it carried one (as Pipecat's
                # runner has it), else the start request's `body`. Keys only: values may be private.
                body = server.request_data if server.request_data is not None else config.body
                events.emit("connected", pc_id=client.pc_id, body_keys=sorted(body))
                if channel is not None:
                    await channel.report("joined")
                if config.services is None and session is not None:
                    await session.worker.queue_frames([greeting_frame()])

            @transport.event_handler("on_client_disconnected")
            async def _on_disconnected(transport: object, client: SmallWebRTCConnection) -> None:
                events.emit("disconnected", pc_id=client.pc_id)
                if connected:
                    lifecycle.end(EndReason.PEER_DISCONNECTED)
                else:
                    lifecycle.end(EndReason.CONNECT_FAILED, "the peer connection closed before it was up")

            await session.start()

        server = SignallingServer(
            session_id=config.session_id,
            on_connection=on_connection,
            ice=config.ice,
        )
        if config.channel is not None:
            # Run by a dispatcher: dial it, listen on nothing; signalling arrives on the channel.
            channel = ChannelSession(
                config, config.channel, events, lifecycle, capabilities=("webrtc",),
                signalling={METHOD_OFFER: server.offer, METHOD_ICE: server.patch},
            )
            await channel.open()
            assignment = await channel.wait_assigned()
            if assignment is not None:
                config = session_config(config, assignment)
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
        if session is not None:
            await session.stop()
        await server.close()
        if channel is not None:
            reason = lifecycle.reason
            await channel.report("ended", reason=reason.value, exit_code=reason.exit_code, detail=lifecycle.detail)
            await channel.close()
    logger.debug(f"deferred modules this session needed: {materialized() or 'none'}")
    return lifecycle
