"""`--transport websocket`: one phone call (or WebSocket client), its frames through the dispatcher.

The dispatcher terminates the carrier's WebSocket; this bot, which listens on nothing, is told over
its control channel where the call's media is (`media.attach`: a path on the dispatcher and a
one-time secret) and dials it (bot/carrier_socket.py). The user's `bot()` then gets Pipecat's
`WebSocketRunnerArguments` for that socket, and its own `create_transport` detects the carrier
from the first messages, as under Pipecat's runner. The call's end is the socket's: the caller
hanging up closes it (the bot's transport sees the client leave), and a bot that ends its
pipeline closes it, which hangs the call up at the dispatcher.

A reserve bot of the other modes takes a call too (`CALL_CAPABILITY`, `run_call`): the same
user's file serves browsers and phones, so one warm reserve covers both.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.channel_session import ChannelSession, await_session
from bot.config import BotConfig, ConfigError
from bot.events import EventWriter
from bot.lifecycle import EndReason, SessionLifecycle
from bot.runner_args import websocket_arguments
from bot.user_bot import UserBot
from bot.user_session import UserBotSession
from bot.watch import SessionWatch
from botchannel.contract import METHOD_MEDIA_ATTACH, RequestFailed

if TYPE_CHECKING:  # the call's socket needs Starlette, which a Daily-only bot project may not have
    from bot.carrier_socket import CarrierSocket

CALL_CAPABILITY = "websocket"
# What `create_transport` imports inside the user's bot() for a call (~0.3-1 s, FastAPI's most):
# imported before `ready` by a call-only bot, in the background by another mode's reserve bot,
# so a call's first frames are not held up by imports and a browser session's start is not either.
CALL_MODULES = (
    "pipecat.transports.websocket.fastapi",
    "pipecat.serializers.twilio", "pipecat.serializers.telnyx", "pipecat.serializers.plivo",
    "pipecat.serializers.exotel",
)  # fmt: skip


def can_take_calls() -> bool:
    """Whether this bot's closure has what a call needs (Pipecat's FastAPI WebSocket transport and
    Starlette): a project installed without them serves its own transport and never announces
    calls, so the dispatcher never routes a call to a bot that would fail it."""
    return all(importlib.util.find_spec(name) is not None for name in ("fastapi", "starlette"))


def call_capabilities() -> tuple[str, ...]:
    """What a reserve bot of another mode announces besides its own transport."""
    return (CALL_CAPABILITY,) if can_take_calls() else ()


def preload_call_modules() -> None:
    for name in CALL_MODULES:
        importlib.import_module(name)


_PRELOADING: set[asyncio.Future[None]] = set()  # held until done (a task only weakly referenced may vanish)


def preload_in_background() -> None:
    """A reserve bot of another mode: the call modules load while it waits idle."""
    if not can_take_calls():
        return
    task = asyncio.ensure_future(asyncio.to_thread(preload_call_modules))
    _PRELOADING.add(task)
    task.add_done_callback(_PRELOADING.discard)


class CallMedia:
    """The call's media socket, once the dispatcher has said where it is (`media.attach`)."""

    def __init__(self, channel_url: str) -> None:
        self._channel_url = channel_url
        self.socket: asyncio.Future[CarrierSocket] = asyncio.get_running_loop().create_future()

    @property
    def handlers(self) -> dict[str, Any]:
        return {METHOD_MEDIA_ATTACH: self.attach}

    async def attach(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.socket.done():
            raise RequestFailed(409, "already_attached", "this bot serves one call")
        from bot.carrier_socket import MediaAttachError, dial_media  # only a bot that takes a call needs it

        try:
            self.socket.set_result(await dial_media(self._channel_url, params))
        except MediaAttachError as exc:
            raise RequestFailed(502, "media_unreachable", str(exc)) from None
        return {}


async def check(config: BotConfig, user_bot: UserBot, events: EventWriter) -> int:
    events.emit("checked", transport="websocket", bot=str(user_bot.path))
    return 0


async def serve(config: BotConfig, user_bot: UserBot, events: EventWriter) -> SessionLifecycle:
    if config.channel is None:
        raise ConfigError("--transport websocket needs BOT_CHANNEL_URL: a call's media comes through the dispatcher")
    lifecycle = SessionLifecycle()
    watch = SessionWatch()
    watch.install()
    media = CallMedia(config.channel.url)
    preload_call_modules()
    with lifecycle.signals_end_session():
        session = UserBotSession(user_bot, lifecycle, watch)
        channel = ChannelSession(
            config, config.channel, events, lifecycle, capabilities=(CALL_CAPABILITY,), signalling=media.handlers
        )
        assigned = await await_session(channel, config, watch)
        if assigned is not None:
            await run_call(assigned, session, channel, media, events)
    return lifecycle


async def run_call(
    config: BotConfig, session: UserBotSession, channel: ChannelSession, media: CallMedia, events: EventWriter
) -> None:
    """The assigned call, to its end: await its media, run the user's bot on it, report, close."""
    lifecycle = session.lifecycle
    lifecycle.end_after(config.max_duration, EndReason.MAX_DURATION)
    connect_deadline = lifecycle.end_after(
        config.connect_timeout, EndReason.CONNECT_TIMEOUT, f"no call's media within {config.connect_timeout:g}s"
    )
    if not lifecycle.ended:
        events.emit("ready", pid=os.getpid(), transport="websocket", machine_id=channel.machine_id)
        await channel.report("ready")
    ending = asyncio.ensure_future(lifecycle.wait())
    waiting: set[asyncio.Future[Any]] = {media.socket, ending}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    ending.cancel()
    if media.socket.done() and not lifecycle.ended:
        await asyncio.to_thread(preload_call_modules)  # at once when the reserve bot preloaded them
        socket = media.socket.result()
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
    if media.socket.done() and not media.socket.cancelled():
        await _hang_up(media.socket.result())
    reason = lifecycle.reason
    await channel.report("ended", reason=reason.value, exit_code=reason.exit_code, detail=lifecycle.detail)
    await channel.close()


async def _hang_up(socket: CarrierSocket) -> None:
    try:
        await asyncio.wait_for(socket.close(), 2)
    except Exception:  # noqa: S110 - the dispatcher closes its side of a call that is over anyway
        pass
