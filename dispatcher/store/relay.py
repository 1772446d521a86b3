"""Requests for a bot whose channel ended at another replica, relayed over the store's pub/sub.

Each replica subscribes to its own channel, `relay:<replica id>` (LiveKit bridges signalling
between nodes the same way). `ask(owner, …)` publishes a request there, naming the asker's
channel for the reply, and waits for it; the owner answers from its local channel through the
handler it was given (the store knows nothing about bots). A PUBLISH that reaches no subscriber
means the owner is gone: `ask` says so at once instead of waiting. Pub/sub delivers at most once:
a lost message is a timeout, the same as a bot that does not answer.

Every request and reply is sealed (dispatcher/store/message_seal.py): a replica acts only on what
another replica sent it, recently, once; and encrypted, because a request may carry a session's
secrets (a relayed claim's launch values, an offer's ICE password) that no reader of the store may see.
At most `MAX_WORKING` relayed requests are answered at once; past that the newest is dropped
(counted as `busy`) rather than queued: those in progress already hold a bot's attention, and the
dropped one's asker sees what a lost message costs, a timeout, instead of this replica's memory
growing with a consumer that cannot keep up.

A request says how long its asker waits (`wait`, seconds); its handler reads it (`asker_waits`) so the work it
asks of a bot is bounded as it would be at the asker (a verdict's 3 s), not by this replica's own default.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from dispatcher.errors import ApiError
from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.subscription import listen_forever, subscriber

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis

log = logging.getLogger("dispatcher.store.relay")

MAX_MESSAGE_BYTES = 256 * 1024  # an SDP offer is a few KB; anything near this is not signalling
MAX_PENDING = 10_000  # asks awaiting a reply at once
MAX_WORKING = 1_000  # relayed requests this replica answers at once (each waits on one bot)


class RelayRefused(ApiError):
    """The owner's bot (or the owner) refused: its status, code and message pass through."""


class NotHere(Exception):
    """The asked replica holds no channel for the session (its bot left or re-dialled elsewhere)."""


Handler = Callable[[str, str, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
_ASKER_WAITS: ContextVar[float | None] = ContextVar("relay_asker_waits", default=None)


def asker_waits() -> float | None:
    """In a relayed request's handler: how long its asker waits for the answer, from the request's arrival;
    None outside one, or for a request from a replica of a version that does not say."""
    return _ASKER_WAITS.get()


class Relay:
    def __init__(self, store: Store, handler: Handler, seal: MessageSeal) -> None:
        self._store = store
        self._handler = handler
        self._seal = seal
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._subscriber: Redis | None = None
        self._working: set[asyncio.Task[None]] = set()

    def channel(self, replica_id: str) -> str:
        return self._store.key("relay", replica_id)

    async def start(self) -> None:
        self._listening = asyncio.create_task(self._listen(), name="store-relay")

    async def wait_subscribed(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        return self._subscribed.is_set()

    async def ask(
        self, replica_id: str, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The owner's answer; None when no replica listens on its channel any more. Raises
        RelayRefused (the bot's refusal), NotHere, TimeoutError, StoreUnavailable."""
        if len(self._pending) >= MAX_PENDING:
            raise RelayRefused(503, "relay_busy", "too many requests relayed to other replicas at once")
        request_id = secrets.token_hex(8)
        message = self._encode(replica_id, {"id": request_id, "reply_to": self._store.replica_id,
                                            "session_id": session_id, "method": method, "params": dict(params),
                                            "wait": timeout})
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            receivers = await self._store.call(lambda: self._store.redis.publish(self.channel(replica_id), message))
            if not receivers:
                return None
            answer = await asyncio.wait_for(reply, timeout)
        finally:
            self._pending.pop(request_id, None)
        if "result" in answer and isinstance(answer["result"], dict):
            result: dict[str, Any] = answer["result"]
            return result
        raw_error = answer.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        if error.get("code") == "not_here":
            raise NotHere(session_id)
        retry_after, extra = error.get("retry_after"), error.get("extra")
        raise RelayRefused(int(error.get("status", 502)), str(error.get("code", "bot_error")),
                           str(error.get("message", "refused")),
                           retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
                           extra=_plain_fields(extra))

    # --- this replica's channel ------------------------------------------------------------

    async def _listen(self) -> None:
        channel = self.channel(self._store.replica_id)
        client = self._subscriber = self._subscriber or subscriber(self._store.settings, decode_responses=True)
        await listen_forever(lambda: client.pubsub(ignore_subscribe_messages=True),
                             lambda pubsub: pubsub.subscribe(channel), self._received, self._subscribed, "relay")

    def _received(self, message: Mapping[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, str) or len(data) > MAX_MESSAGE_BYTES:
            return
        channel = self.channel(self._store.replica_id)
        sealed = self._seal.open(channel, "relay", data.encode())
        try:
            concealed = base64.b64decode(sealed, validate=True) if sealed is not None else None
        except binascii.Error:
            concealed = None  # a replica's own seal around text that is not base64: never sent
        body = self._seal.reveal(channel, "relay", concealed) if concealed is not None else None
        if body is None:
            return
        try:
            frame = json.loads(body)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        if "reply" in frame:
            future = self._pending.get(str(frame["reply"]))
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame.get("params"), dict) and all(
            isinstance(frame.get(k), str) for k in ("id", "reply_to", "session_id", "method")
        ):
            if len(self._working) >= MAX_WORKING:
                self._seal.refuse_busy("relay")
                return
            task = asyncio.create_task(self._answer(frame))
            self._working.add(task)
            task.add_done_callback(self._working.discard)

    async def _answer(self, frame: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"reply": frame["id"]}
        wait = frame.get("wait")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0:
            _ASKER_WAITS.set(float(wait))  # this request's own task: its handler alone reads it
        try:
            reply["result"] = dict(await self._handler(frame["session_id"], frame["method"], frame["params"]))
        except NotHere:
            reply["error"] = {"status": 404, "code": "not_here", "message": "no channel for that session here"}
        except ApiError as exc:  # the bot's refusal (a bad offer, a second peer…), told as the asker answers it
            reply["error"] = {"status": exc.status, "code": exc.code, "message": exc.message,
                              "retry_after": exc.retry_after, "extra": exc.extra}
        except Exception as exc:
            log.warning("relayed %s for %s failed: %s", frame["method"], frame["session_id"], exc)
            reply["error"] = {"status": 502, "code": "relay_failed", "message": type(exc).__name__}
        message = self._encode(frame["reply_to"], reply)
        with contextlib.suppress(StoreUnavailable):  # the asker times out
            await self._store.call(lambda: self._store.redis.publish(self.channel(frame["reply_to"]), message))

    async def aclose(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        for task in list(self._working):
            task.cancel()
        if self._subscriber is not None:
            await self._subscriber.aclose()

    def _encode(self, replica_id: str, frame: Mapping[str, Any]) -> bytes:
        """The frame, encrypted and sealed for `replica_id`'s channel alone."""
        channel = self.channel(replica_id)
        plain = json.dumps(frame, separators=(",", ":")).encode()
        # Base64: the relay's channel carries text (its subscriber decodes what it receives).
        sealed = self._seal.seal(channel, base64.b64encode(self._seal.conceal(channel, plain)))
        if len(sealed) > MAX_MESSAGE_BYTES:
            raise RelayRefused(413, "too_large", "the relayed request is too large")
        return sealed


def _plain_fields(extra: Any) -> dict[str, Any] | None:
    """A refusal's extra fields (`{"outcome": "unknown"}`): short strings and numbers under plain names,
    nothing that could stand in for the error's own `code` or `message`."""
    if not isinstance(extra, dict):
        return None
    return {k: v for k, v in extra.items() if isinstance(k, str) and k not in ("code", "message")
            and len(k) <= 40 and (isinstance(v, int | float) or (isinstance(v, str) and len(v) <= 200))} or None
