"""A call's bot media socket at another replica, reached through the store.

On the carrier's replica, `StoreHop` stands in for the bot's media socket in the relay
(dispatcher/phone/relay.py): what is sent to it is published to the replica holding the bot's
socket, what that replica publishes comes out of `receive`. On that replica,
`serve_relayed_media` pumps between the bot's socket and its own hop back. Frames cross verbatim
(text stays text, bytes stay bytes); a frame larger than the relay's whole buffer is dropped,
never queued. Either side's end reaches the other as an end message; a replica that is gone or
silent for a lease ends the call on the other side (dispatcher/store/media_bus.py). A bot past its
frame rate is closed at its own replica, and its end tells the carrier's replica why.
"""

from __future__ import annotations

import logging

from starlette.types import Message
from starlette.websockets import WebSocket

from dispatcher.phone.relay import (
    BOT_OVER_RATE,
    CLOSE_OVER_RATE,
    MAX_BUFFERED_BYTES,
    MAX_FRAMES_PER_SECOND,
    OVER_RATE,
    CallStats,
    FrameRates,
    close_socket,
    pump_both,
)
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import CallMedia
from dispatcher.store.media_bus import BINARY, HELLO, TEXT, CallLine

log = logging.getLogger("dispatcher.phone")

MAX_FRAME_BYTES = MAX_BUFFERED_BYTES  # a frame the relay could not even buffer is not sent on
DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000}


class StoreHop:
    """A `MediaSocket` whose other end is at another replica."""

    # Its frames were counted against their side's rate where they were read from their socket
    # (dispatcher/phone/relay.py `rated_here`).
    rated_at_its_replica = True

    def __init__(self, line: CallLine, lease_seconds: float) -> None:
        self.line = line
        self.dropped = 0
        self._dead_after = lease_seconds
        line.keep_alive(lease_seconds / 3)

    async def receive(self) -> Message:
        data = await self.line.next(self._dead_after)
        if data is None:  # the other side's reason, as it finished the line (a bot's frame rate, say)
            return {**DISCONNECT, "reason": self.line.ended or ""}
        if data[:1] == TEXT:
            return {"type": "websocket.receive", "text": data[1:].decode()}
        return {"type": "websocket.receive", "bytes": data[1:]}

    async def send(self, message: Message) -> None:
        text = message.get("text")
        kind, payload = (TEXT, text.encode()) if text is not None else (BINARY, message.get("bytes") or b"")
        if len(payload) > MAX_FRAME_BYTES:
            self.dropped += 1
            return
        await self.line.send(kind, payload)  # a replica gone ends the line: `receive` then says so

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.line.finish(reason or "closed")


async def serve_relayed_media(
    websocket: WebSocket, media: CallMedia, session_id: str, carrier_replica: str,
    max_frames_per_second: int = MAX_FRAMES_PER_SECOND,
) -> CallStats:
    """The bot's media socket (accepted, its secret spent) ↔ the call's carrier replica, to the
    call's end. The bot's side says hello first, so the carrier's replica knows where to send."""
    stats = CallStats()
    try:
        line = await media.line_to(session_id, carrier_replica)
    except StoreUnavailable:
        await close_socket(websocket, 1011, "the call's replica cannot be reached")
        stats.ended_by = "error"
        return stats
    hop = StoreHop(line, media.lease_seconds)
    rates = FrameRates(max_frames_per_second)
    try:
        if not await line.send(HELLO, media.replica_id.encode(), confirmed=True):
            stats.ended_by = "carrier"  # the carrier's replica is gone, and its call with it
            return stats
        # Here the hop is the carrier's side and the bot's socket the bot's, as at the carrier's replica.
        stats.ended_by = await pump_both(hop, websocket, stats, rates.not_here(hop, websocket))
    except Exception as exc:
        log.info("phone call %s: relayed media ended (%s)", session_id, type(exc).__name__)
        stats.ended_by = stats.ended_by or "error"
    finally:
        stats.dropped = hop.dropped + line.dropped
        if line.ended is None:
            over_rate = stats.ended_by if stats.ended_by in OVER_RATE else None
            await line.finish("bot_hung_up" if stats.ended_by == "bot" else over_rate or "relay_ended")
        line.close()
        if stats.ended_by == BOT_OVER_RATE:
            log.warning("phone call %s: %s; its socket closed (%d)", session_id,
                        rates.reason(BOT_OVER_RATE), CLOSE_OVER_RATE)
            await close_socket(websocket, CLOSE_OVER_RATE, rates.reason(BOT_OVER_RATE))
        else:
            await close_socket(websocket, 1000, "call ended")
    return stats
