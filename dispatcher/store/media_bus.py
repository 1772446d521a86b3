"""A phone call's frames between two replicas, over each replica's media channel in the store.

`media:<replica>` carries what that replica is to receive for its relayed calls. Each replica
subscribes to its own channel once (a plain SUBSCRIBE: the store user's rules cannot grant a
pattern), on a connection of its own that does not decode. A message names its call, then a kind
byte and its payload, `<n><session id, n bytes><kind><payload>`:

    T  a text frame (UTF-8)         H  hello: the sender's replica id (the bot's side has the socket)
    B  a binary frame               E  end: the reason (that side hung up)
    K  keepalive: the sender lives

PUBLISHes are pipelined in order on one connection (publisher.py); one that reached no subscriber,
or a replica silent for `dead_after`, ends the call. Delivery is at most once. Every message is
sealed and encrypted (message_seal.py). What a replica's loss costs a call: docs/phone.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from dispatcher.store.client import Store, StoreUnavailable, connect
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.publisher import Publisher
from dispatcher.store.subscription import listen_forever, subscriber

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("dispatcher.store.media")

TEXT, BINARY, HELLO, END, KEEPALIVE = b"T", b"B", b"H", b"E", b"K"
# How a line ends when the other replica cannot be reached (not because either side of the call
# hung up): nothing heard from it for the line's lease, the store not answering, no one subscribed.
PEER_SILENT, STORE_UNAVAILABLE, PEER_GONE = "peer_silent", "store_unavailable", "peer_gone"
LINE_LOST = frozenset({PEER_SILENT, STORE_UNAVAILABLE, PEER_GONE})
MAX_QUEUED = 500  # frames received and not yet sent on (as the carrier buffer: 10 s of 20 ms frames)
MAX_QUEUED_BYTES = 1024 * 1024
SUBSCRIBE_SECONDS = 5.0


class CallLine:
    """One call's end of the hop at this replica: what the other replica sent, in order, bounded."""

    def __init__(self, bus: MediaBus, session_id: str, peer: str | None) -> None:
        self._bus = bus
        self.session_id = session_id
        self.peer = peer  # the other replica; the carrier's side learns it from the hello
        self.hello: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ended: str | None = None
        self.dropped = 0
        self.last_heard = time.monotonic()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None

    def deliver(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        kind, payload = data[:1], data[1:]
        if kind in (TEXT, BINARY):
            self._queue.append(data)
            self._queued_bytes += len(data)
            while len(self._queue) > MAX_QUEUED or self._queued_bytes > MAX_QUEUED_BYTES:
                self._queued_bytes -= len(self._queue.popleft())  # the oldest audio goes first
                self.dropped += 1
            self._ready.set()
        elif kind == HELLO and not self.hello.done():
            self.peer = payload.decode(errors="replace")
            self.hello.set_result(self.peer)
        elif kind == END:
            self.end(payload.decode(errors="replace") or "peer_ended")

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._ready.set()

    async def next(self, dead_after: float) -> bytes | None:
        """The next frame (kind byte and payload); None once the call is over here: the other
        side ended it, its replica is gone, or nothing came from it for `dead_after` seconds."""
        while True:
            if self._queue:
                data = self._queue.popleft()
                self._queued_bytes -= len(data)
                return data
            if self.ended is not None:
                return None
            self._ready.clear()
            left = self.last_heard + dead_after - time.monotonic()
            if left <= 0:
                self.end(PEER_SILENT)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), left)

    async def send(self, kind: bytes, payload: bytes = b"", *, confirmed: bool = False) -> bool:
        """Publishes to the other replica, in order after what this line sent before. Returns once
        the store has it, without waiting for its reply (`confirmed`: once the reply says the other
        replica got it). A reply that says no one got it ends the line ("peer_gone"), and so does
        a store that does not answer ("store_unavailable"); False when it is ended already."""
        if self.peer is None or self.ended is not None:
            return False
        try:
            reply = await self._bus.publish(self.peer, self.session_id, kind + payload)
        except StoreUnavailable:
            self.end(STORE_UNAVAILABLE)
            return False
        reply.add_done_callback(self._replied)
        if confirmed:
            with contextlib.suppress(StoreUnavailable):
                await reply
        return self.ended is None

    def _replied(self, reply: asyncio.Future[int]) -> None:
        if reply.cancelled() or reply.exception() is not None:
            self.end(STORE_UNAVAILABLE)
        elif not reply.result():
            self.end(PEER_GONE)

    def keep_alive(self, interval: float) -> None:
        """Tells the other replica every `interval` seconds that this one lives (until closed)."""

        async def beat() -> None:
            while self.ended is None:
                await asyncio.sleep(interval)
                await self.send(KEEPALIVE)

        self._keepalive = self._keepalive or asyncio.create_task(beat(), name=f"media-keepalive-{self.session_id}")

    async def finish(self, reason: str) -> None:
        """Tells the other side the call is over here (if it is still there), and closes."""
        if self.ended is None:
            await self.send(END, reason.encode())
        self.close(reason)

    def close(self, reason: str = "closed") -> None:
        self.end(reason)
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._bus.forget(self)


class MediaBus:
    def __init__(self, store: Store, seal: MessageSeal) -> None:
        self._store = store
        self._seal = seal
        self.replica_id = store.replica_id
        self._redis: Redis | None = None  # made on the first relayed call: no cost until then
        self._subscriber: Redis | None = None  # this replica's channel's, likewise
        self._publisher: Publisher | None = None
        self._subscriptions = 0  # how often this replica subscribed (again, after each outage)
        self._subscribing = False  # a SUBSCRIBE under way, counted: the retries of one outage are not
        self._published_since = 0
        self._lines: dict[str, CallLine] = {}
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    def channel(self, replica_id: str) -> str:
        return self._store.key("media", replica_id)

    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = connect(self._store.settings, decode_responses=False)
        return self._redis

    async def open(self, session_id: str, peer: str | None = None) -> CallLine:
        """This replica's end of the call's hop, receiving from the moment it is returned.
        Raises `StoreUnavailable` when this replica cannot subscribe."""
        if self._listening is None:
            self._listening = asyncio.create_task(self._listen(), name="store-media")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_SECONDS)
        if not self._subscribed.is_set():
            raise StoreUnavailable("cannot subscribe to this replica's call channels")
        line = CallLine(self, session_id, peer)
        old = self._lines.get(session_id)
        if old is not None:
            old.close("replaced")
        self._lines[session_id] = line
        return line

    def forget(self, line: CallLine) -> None:
        if self._lines.get(line.session_id) is line:
            del self._lines[line.session_id]

    async def publish(self, replica_id: str, session_id: str, data: bytes) -> asyncio.Future[int]:
        """Writes the message (in order after this replica's earlier ones); the future says how
        many subscribers got it. Raises `StoreUnavailable`."""
        if self._publisher is not None and self._published_since != self._subscriptions:
            # The subscription was lost and made again (a store outage): the publisher's connection
            # went with it, and would fail the next message rather than say so now. Dropped before
            # the await, so a publish meanwhile makes the one new publisher, not a second.
            old, self._publisher = self._publisher, None
            await old.aclose()
        if self._publisher is None:
            self._publisher = Publisher(self._client(), self._store.settings.timeout_seconds)
            self._published_since = self._subscriptions
        channel = self.channel(replica_id)
        concealed = self._seal.conceal(channel, _addressed(session_id, data))
        return await self._publisher.publish(channel, self._seal.seal(channel, concealed))

    async def _listen(self) -> None:
        channel = self.channel(self.replica_id)
        client = self._subscriber = self._subscriber or subscriber(self._store.settings, decode_responses=False)
        await listen_forever(lambda: client.pubsub(ignore_subscribe_messages=True),
                             lambda pubsub: self._subscribe(pubsub, channel),
                             self._received, self._subscribed, "call media")

    async def _subscribe(self, pubsub: PubSub, channel: str) -> None:
        # Counted before the SUBSCRIBE is sent: once the store has it, a peer may hear this replica is
        # back and a publish follow at once, which must not go out on the outage's dead connection.
        # Once per outage: a failed attempt's retry does not replace the publisher again.
        if not self._subscribing:
            self._subscriptions += 1
            self._subscribing = True
        await pubsub.subscribe(channel)
        self._subscribing = False

    def _received(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, bytes) or not data:
            return
        channel = self.channel(self.replica_id)
        concealed = self._seal.open(channel, "media", data)
        data = self._seal.reveal(channel, "media", concealed) if concealed is not None else None
        if not data:
            return
        end = 1 + data[0]
        line = self._lines.get(data[1:end].decode(errors="replace"))
        if line is not None and len(data) > end:  # a call that ended here already: its stragglers are dropped
            line.deliver(data[end:])

    async def aclose(self) -> None:
        for line in list(self._lines.values()):
            line.close("replica_stopping")
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        if self._publisher is not None:
            await self._publisher.aclose()
        for client in (self._subscriber, self._redis):
            if client is not None:
                await client.aclose()


def _addressed(session_id: str, data: bytes) -> bytes:
    """The message for `session_id`'s line at the receiving replica: its id, then `data`."""
    name = session_id.encode()
    if len(name) > 255:
        raise ValueError("a session id longer than 255 bytes cannot name a call's frames")
    return bytes([len(name)]) + name + data
