"""The bot's end of the control channel: dial the dispatcher, say hello, answer its requests.

The contract (frames, methods, reports) is botchannel/contract.py. This module only moves
frames: requests are answered by the handlers the session mode registers (`assign`,
`webrtc.offer`, `webrtc.ice`), each in its own task so a slow offer never holds a report back.

`websockets` costs no start-up time here: Pipecat's WebRTC path already imports its asyncio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from loguru import logger
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bot.channel_tls import UntrustedChannel, channel_context, untrusted, verification_failure
from bot.identity import IdentityUnavailable, MachineIdentity
from botchannel.contract import (
    DIAL_TIMEOUT_SECONDS,
    MAX_FRAME_BYTES,
    Hello,
    ProtocolError,
    Reply,
    ReplyError,
    Report,
    Request,
    RequestFailed,
    Welcome,
    encode,
    parse_frame,
)

Handler = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]

CONNECT_TIMEOUT_SECONDS = DIAL_TIMEOUT_SECONDS
# Pings both ways: a dead dispatcher (or bot) is noticed within about ping interval + timeout.
PING_INTERVAL_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 10.0


class ChannelError(Exception):
    """The channel could not be opened (refused credential, unreachable dispatcher, bad hello)."""

    def __init__(self, message: str, *, refused: bool = False, unproven: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # the dispatcher answered no: dialling again changes nothing
        self.unproven = unproven  # the machine's identity source gave no token, after its own retries


class BotChannel:
    def __init__(
        self, url: str, token: str, hello: Hello, handlers: Mapping[str, Handler], identity: MachineIdentity,
        ca_file: str | None = None,
    ) -> None:
        self._url = url
        self._ca_file = ca_file  # BOT_CHANNEL_CA_FILE: a wss:// channel's CA (bot/channel_tls.py)
        self._token = token
        self.hello = hello
        self._identity = identity  # a fresh identity token goes with each hello (tokens expire)
        self._handlers = dict(handlers)
        self._ws: ClientConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Reply]] = {}  # this bot's own requests (the recording's)

    async def connect(self, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        """Opens the channel and waits for `welcome`; raises ChannelError on any failure."""
        try:
            identity = await self._identity.token()
        except IdentityUnavailable as exc:
            raise ChannelError(f"cannot prove which machine this is: {exc}", unproven=True) from None
        try:  # a CA that cannot be read, or does not vouch for the dispatcher, is not fixed by dialling again
            context = channel_context(self._url, self._ca_file)
        except UntrustedChannel as exc:
            raise ChannelError(str(exc), refused=True) from None
        try:
            self._ws = await connect(
                self._url,
                # No credential (a Kubernetes warm pool's pod): the hello's identity token alone.
                additional_headers={"Authorization": f"Bearer {self._token}"} if self._token else {},
                open_timeout=timeout,
                proxy=None,  # the dispatcher is reached directly (loopback, VPC, private network)
                compression=None,  # small JSON frames: deflate costs more than it saves
                max_size=MAX_FRAME_BYTES,
                ping_interval=PING_INTERVAL_SECONDS,
                ping_timeout=PING_TIMEOUT_SECONDS,
                close_timeout=2,
                ssl=context,
            )
            await self._ws.send(encode(replace(self.hello, identity=identity)))
            first = parse_frame(await asyncio.wait_for(self._ws.recv(), timeout))
        except InvalidStatus as exc:
            raise ChannelError(f"the dispatcher refused the channel (HTTP {exc.response.status_code})",
                               refused=exc.response.status_code < 500) from None
        except (OSError, TimeoutError, WebSocketException, ProtocolError) as exc:
            await self.close()
            if (refused := verification_failure(exc)) is not None:
                raise ChannelError(untrusted(self._url, self._ca_file, refused), refused=True) from None
            raise ChannelError(f"cannot open the channel to {self._url}: {type(exc).__name__}: {exc}") from None
        if not isinstance(first, Welcome):
            await self.close()
            raise ChannelError("the dispatcher did not welcome this bot")
        if first.resume is not None:  # presented again at every re-dial: it proves this is the bot welcomed
            self.hello = replace(self.hello, resume=first.resume)

    async def serve(self) -> None:
        """Answers requests until the channel closes (returns then; never raises for a drop)."""
        assert self._ws is not None, "connect() first"
        try:
            async for raw in self._ws:
                try:
                    frame = parse_frame(raw)
                except ProtocolError as exc:
                    logger.warning(f"channel: ignoring a malformed frame: {exc}")
                    continue
                if isinstance(frame, Request):
                    task = asyncio.create_task(self._answer(frame), name=f"channel-{frame.method}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                elif isinstance(frame, Reply) and (waiting := self._pending.get(frame.id)) is not None:
                    if not waiting.done():
                        waiting.set_result(frame)
        except ConnectionClosed:
            pass
        logger.info("channel to the dispatcher closed")

    async def _answer(self, request: Request) -> None:
        handler = self._handlers.get(request.method)
        try:
            if handler is None:
                raise RequestFailed(404, "unknown_method", f"this bot has no method {request.method!r}")
            reply = Reply(request.id, result=dict(await handler(request.params)))
        except RequestFailed as exc:
            reply = Reply(request.id, error=ReplyError(exc.status, exc.code, exc.message))
        except ProtocolError as exc:
            reply = Reply(request.id, error=ReplyError(400, "invalid_request", str(exc)))
        except Exception as exc:
            logger.exception(f"channel request {request.method} failed")
            reply = Reply(request.id, error=ReplyError(500, "bot_error", type(exc).__name__))
        await self._send(encode(reply))

    async def request(self, method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        """Asks the dispatcher (the recording's upload URLs): its result, or RequestFailed with its
        refusal; 503 `channel_unavailable` when the channel is down or the answer does not come in time."""
        if self._ws is None:
            raise RequestFailed(503, "channel_unavailable", "the channel to the dispatcher is not open")
        request_id = next(self._ids)
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            async with asyncio.timeout(timeout):
                await self._ws.send(encode(Request(request_id, method, params)))
                reply = await answer
        except (TimeoutError, ConnectionClosed, OSError):
            raise RequestFailed(503, "channel_unavailable", f"the dispatcher did not answer {method}") from None
        finally:
            self._pending.pop(request_id, None)
        if reply.error is not None:
            raise RequestFailed(reply.error.status, reply.error.code, reply.error.message)
        return reply.result or {}

    async def report(self, event: str, session_id: str, **fields: Any) -> None:
        """Best effort: a lost report must never end or stall the session."""
        detail = fields.pop("detail", None)
        await self._send(
            encode(
                Report(event=event, session_id=session_id, t=round(time.time(), 3),
                       detail=detail[:500] if isinstance(detail, str) else None, **fields)
            )
        )

    async def _send(self, text: str) -> None:
        if self._ws is None:
            return
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.send(text)

    async def ping(self, timeout: float) -> bool:
        """True if the dispatcher answers a ping within `timeout`."""
        if self._ws is None:
            return False
        try:
            pong = await self._ws.ping()
            await asyncio.wait_for(pong, timeout)
        except (ConnectionClosed, OSError, TimeoutError, RuntimeError):
            return False
        return True

    def drop(self) -> None:
        """Drops a dead connection at once (no closing handshake to wait for): `serve` returns."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
