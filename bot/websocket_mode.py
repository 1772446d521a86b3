"""`--transport websocket`: one phone call (or WebSocket client), its frames through the dispatcher.

The dispatcher terminates the carrier's WebSocket; this bot, which listens on nothing, is told over
its control channel where the call's media is (`media.attach`: a path on the dispatcher and a
one-time secret) and dials it (bot/carrier_socket.py). The user's `bot()` then gets Pipecat's
`WebSocketRunnerArguments` for that socket, and its own `create_transport` detects the carrier
from the first messages, as under Pipecat's runner. The call's end is the socket's: the caller
hanging up closes it (the bot's transport sees the client leave), and a bot that ends its
pipeline closes it, which hangs the call up at the dispatcher.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

# What `create_transport` imports inside the user's bot() for a call: imported before `ready`, so
# the first frames are not held up by imports.
from pipecat.serializers import exotel, plivo, telnyx, twilio  # noqa: F401
from pipecat.transports.websocket import fastapi as _fastapi_transport  # noqa: F401

from bot.carrier_socket import CarrierSocket, MediaAttachError, dial_media
from bot.channel_session import ChannelSession, await_session
from bot.config import BotConfig, ConfigError
from bot.events import EventWriter
from bot.lifecycle import EndReason, SessionLifecycle
from bot.runner_args import websocket_arguments
from bot.user_bot import UserBot
from bot.user_session import UserBotSession
from bot.watch import SessionWatch
from botchannel.contract import METHOD_MEDIA_ATTACH, RequestFailed


async def check(config: BotConfig, user_bot: UserBot, events: EventWriter) -> int:
    events.emit("checked", transport="websocket", bot=str(user_bot.path))
    return 0


async def serve(config: BotConfig, user_bot: UserBot, events: EventWriter) -> SessionLifecycle:
    if config.channel is None:
        raise ConfigError("--transport websocket needs BOT_CHANNEL_URL: a call's media comes through the dispatcher")
    channel_url = config.channel.url
    lifecycle = SessionLifecycle()
    watch = SessionWatch()
    watch.install()
    media: asyncio.Future[CarrierSocket] = asyncio.get_running_loop().create_future()

    async def attach(params: Mapping[str, Any]) -> dict[str, Any]:
        if media.done():
            raise RequestFailed(409, "already_attached", "this bot serves one call")
        try:
            media.set_result(await dial_media(channel_url, params))
        except MediaAttachError as exc:
            raise RequestFailed(502, "media_unreachable", str(exc)) from None
        return {}

    with lifecycle.signals_end_session():
        session = UserBotSession(user_bot, lifecycle, watch)
        channel = ChannelSession(
            config, config.channel, events, lifecycle, capabilities=("websocket",),
            signalling={METHOD_MEDIA_ATTACH: attach},
        )  # fmt: skip
        assigned = await await_session(channel, config, watch)
        if assigned is None:
            return lifecycle
        config = assigned
        lifecycle.end_after(config.max_duration, EndReason.MAX_DURATION)
        connect_deadline = lifecycle.end_after(
            config.connect_timeout, EndReason.CONNECT_TIMEOUT, f"no call's media within {config.connect_timeout:g}s"
        )
        if not lifecycle.ended:
            events.emit("ready", pid=os.getpid(), transport="websocket", machine_id=channel.machine_id)
            await channel.report("ready")
        ending = asyncio.ensure_future(lifecycle.wait())
        waiting: set[asyncio.Future[Any]] = {media, ending}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        ending.cancel()
        if media.done() and not lifecycle.ended:
            socket = media.result()
            connect_deadline.cancel()
            session.connected = True  # the call is up: its frames flow from here
            events.emit("connected", carrier=socket.carrier)
            await channel.report("joined")
            session.start(
                websocket_arguments(
                    socket, body=config.body, session_id=config.session_id, idle_timeout=config.idle_timeout,
                    transport_type="websocket" if socket.carrier == "generic" else None,
                )
            )  # fmt: skip
        await lifecycle.wait()
        await session.stop()
        if media.done() and not media.cancelled():
            await _hang_up(media.result())
        reason = lifecycle.reason
        await channel.report("ended", reason=reason.value, exit_code=reason.exit_code, detail=lifecycle.detail)
        await channel.close()
    return lifecycle


async def _hang_up(socket: CarrierSocket) -> None:
    try:
        await asyncio.wait_for(socket.close(), 2)
    except Exception:  # noqa: S110 - the dispatcher closes its side of a call that is over anyway
        pass
