"""One phone call: the carrier's WebSocket on one side, the bot's media WebSocket on the other.

Frames cross verbatim: no JSON is re-encoded on the way (the bot's frames are read only until its
first audio, for the call's "first bot audio") (the bot's own Pipecat
serializer reads the carrier's protocol, and its `parse_telephony_websocket` sees the carrier's
first messages exactly as sent). While the bot is being claimed (warm: tens of ms) or started
(cold: seconds), the carrier's frames wait in a bounded buffer: the first two (Twilio's
`connected` and `start`, and their equivalents) are always kept, then at most `MAX_BUFFERED`
frames and `MAX_BUFFERED_BYTES`, oldest dropped first. Whichever side closes first ends the call: the other side is
closed and the session's machine stopped.

Each side's frames are bounded by a token bucket (`FrameRate`: `PHONE_MAX_FRAMES_PER_SECOND`, 250 by
default, and as many at once): relaying costs the dispatcher ~75 µs of CPU a frame whatever the
client's cadence, and any API key may start a call over a WebSocket. Carriers send a frame every
20 ms (50 a second), and Pipecat's WebSocket transports send their `audio_out_10ms_chunks` chunks
(40 ms by default) at twice real time: 50 a second, 200 at their smallest chunk (10 ms). A side past
the bound has its socket closed with 1008 and a reason saying so; the call ends like a hang-up
(`carrier_frame_rate` / `bot_frame_rate`), which the session's timeline records (`media_closed`).

Its steps are spans of the call's trace (dispatcher/observability/tracing.py): `phone.handshake` (the carrier's
first frames), `phone.attach` (the session started or claimed, its bot told where its media is, its
media socket awaited; `session.start` is its child) and `phone.relay` (frames both ways, to the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketState

import dispatcher.observability.tracing as tracing
from botchannel.json_input import parse_json
from dispatcher.phone.hang_up import CLOSED, STOP, is_stop
from dispatcher.phone.silence import CARRIER_SILENT, SilenceBound
from dispatcher.store.media_bus import LINE_LOST

log = logging.getLogger("dispatcher.phone")

HANDSHAKE_FRAMES = 2  # parse_telephony_websocket reads the first two messages
MAX_BUFFERED = 500  # 10 s of 20 ms frames while a cold bot starts; older audio is dropped
# 10 s of μ-law 8 kHz is ~80 KB of audio, ~110 KB base64 and ~200 KB in Twilio's JSON frames: 1 MiB
# per call keeps all of that, but a client sending large frames cannot hold 500 of them in memory.
MAX_BUFFERED_BYTES = 1024 * 1024
# Frames a second each side may send, on average and at once: 5x the carriers' 50 (a 20 ms frame),
# and above Pipecat's WebSocket transports at their smallest output chunk (10 ms at twice real time:
# 200). At ~75 µs of CPU a frame (docs/performance.md), one side at the bound takes ~2 % of a core.
MAX_FRAMES_PER_SECOND = 250
CLOSE_OVER_RATE = 1008  # policy violation
CARRIER_OVER_RATE, BOT_OVER_RATE = "carrier_frame_rate", "bot_frame_rate"
# The other side's socket, at another replica, could not be reached through the store (that replica or
# the store gone quiet): neither side hung up, and the session says so.
BOT_UNREACHABLE, CARRIER_UNREACHABLE = "bot_media_unreachable", "carrier_media_unreachable"
OVER_RATE = frozenset({CARRIER_OVER_RATE, BOT_OVER_RATE})
END_GRACE_SECONDS = 1.0  # a side that failed sending waits this long for the other's own end


class MediaSocket(Protocol):
    """Either end of a call: a Starlette WebSocket, or the store hop to the replica holding the
    bot's media socket (dispatcher/phone/store_hop.py)."""

    async def receive(self) -> Message: ...

    async def send(self, message: Message) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass
class CallStats:
    opened: float = field(default_factory=time.monotonic)
    bot_attached: float | None = None
    first_bot_frame: float | None = None
    carrier_frames: int = 0
    bot_frames: int = 0
    dropped: int = 0
    # "carrier" / "bot" / "start_failed" / CARRIER_OVER_RATE / BOT_OVER_RATE / BOT_UNREACHABLE / CARRIER_UNREACHABLE
    ended_by: str | None = None
    over_rate_at: float | None = None  # epoch seconds: this replica closed a side for its frame rate
    # Epoch seconds and how (dispatcher/phone/hang_up.py): the caller hung up before the bot's side ended.
    caller_hung_up_at: float | None = None
    caller_hung_up_how: str | None = None


# A side may send this many seconds' worth at once: a carrier's or a client's frames held up by a
# network stall arrive together (Pipecat's smallest chunk, 200 a second, after a 6 s stall).
BURST_SECONDS = 5.0
# Bytes a second a side may send, beside its frames: a frame may be up to the WebSocket's limit, and
# relaying costs by the byte too (and crosses the store between replicas). 16 kHz 16-bit audio is
# 32 KB/s, 48 kHz stereo 192 KB/s: 1 MiB/s is five times the largest. Its burst is one second's: a
# burst crosses the store's pub/sub at once, whose subscriber is cut past 32 MB queued (Redis's and
# Valkey's default output limit), with every call relayed to that replica (five-second bursts of eight
# calls cut it in an attack on a local redis-server).
MAX_BYTES_PER_SECOND = 1 << 20
BYTE_BURST_SECONDS = 1.0


class FrameRate:
    """Two token buckets: `per_second` frames and MAX_BYTES_PER_SECOND bytes a second on average,
    BURST_SECONDS' worth of frames and BYTE_BURST_SECONDS' of bytes at once. A rate of `math.inf`
    admits everything: a side whose frames were counted at the replica that read them from their
    socket (dispatcher/phone/store_hop.py)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 bytes_per_second: float = MAX_BYTES_PER_SECOND) -> None:
        self.per_second = per_second
        self.bytes_per_second = bytes_per_second if math.isfinite(per_second) else math.inf
        self._frames = self._frame_burst = per_second * BURST_SECONDS
        self._bytes = self._byte_burst = self.bytes_per_second * BYTE_BURST_SECONDS
        self._clock = clock
        self._at = clock()

    def take(self, size: int = 0) -> bool:
        """Whether one more frame of `size` bytes is within the bound (it is counted if so)."""
        if math.isinf(self.per_second):
            return True
        now = self._clock()
        elapsed, self._at = now - self._at, now
        self._frames = min(self._frame_burst, self._frames + elapsed * self.per_second)
        self._bytes = min(self._byte_burst, self._bytes + elapsed * self.bytes_per_second)
        if self._frames < 1 or self._bytes < size:
            return False
        self._frames -= 1
        self._bytes -= size
        return True


def frame_size(message: Message) -> int:
    """A frame's bytes on the wire (a text frame's UTF-8, not its characters: up to four bytes each)."""
    text = message.get("text")
    return len(text.encode()) if text is not None else len(message.get("bytes") or b"")


def hop_reason(socket: MediaSocket, disconnect: Message) -> str | None:
    """Why a store hop's line ended (dispatcher/store/media_bus.py: the other replica's close, a
    bot's frame rate there, or the line lost); None for a socket of this replica, whose close reason
    is its client's words and names nothing here."""
    return None if rated_here(socket) else disconnect.get("reason")


def rated_here(socket: MediaSocket) -> bool:
    """Whether the frames read from `socket` are counted here: a store hop's were counted at the
    replica that read them from their own socket, and counting them again would count a cold
    start's buffered backlog, sent at once, as a flood."""
    return not getattr(socket, "rated_at_its_replica", False)


@dataclass
class FrameRates:
    """One call's buckets: the carrier's (or client's) frames, and the bot's."""

    per_second: int = MAX_FRAMES_PER_SECOND
    carrier: FrameRate = field(init=False)
    bot: FrameRate = field(init=False)

    def __post_init__(self) -> None:
        self.carrier, self.bot = FrameRate(self.per_second), FrameRate(self.per_second)

    def not_here(self, carrier: MediaSocket, bot: MediaSocket) -> FrameRates:
        """Sides read through the store are not counted again here (`rated_here`)."""
        if not rated_here(carrier):
            self.carrier = FrameRate(math.inf)
        if not rated_here(bot):
            self.bot = FrameRate(math.inf)
        return self

    def reason(self, ended_by: str) -> str:
        return over_rate_reason(ended_by, self.per_second)


def over_rate_reason(ended_by: str, per_second: int) -> str:
    """What a side closed for its rate is told (its close frame), and the session's timeline says."""
    side = "the caller" if ended_by == CARRIER_OVER_RATE else "the bot"
    return f"{side} sent more than {per_second} frames or {MAX_BYTES_PER_SECOND >> 20} MiB a second"


class CarrierBuffer:
    """The carrier's frames that arrived before the bot: handshake kept, the rest bounded. Its
    bytes are the frames' bytes on the wire (`frame_size`), the handshake's included: all of it is
    sent to the bot at once when it attaches, through the store when the bot is at another replica."""

    def __init__(self, limit: int = MAX_BUFFERED, byte_limit: int = MAX_BUFFERED_BYTES) -> None:
        self.handshake: list[Message] = []
        self.media: deque[Message] = deque()
        self.limit, self.byte_limit = limit, byte_limit
        self.bytes = 0
        self.dropped = 0

    def add(self, message: Message) -> None:
        self.bytes += frame_size(message)
        if len(self.handshake) < HANDSHAKE_FRAMES:
            self.handshake.append(message)
            return
        self.media.append(message)
        while self.media and (len(self.media) > self.limit or self.bytes > self.byte_limit):
            self.bytes -= frame_size(self.media.popleft())
            self.dropped += 1

    def drain(self) -> list[Message]:
        frames = [*self.handshake, *self.media]
        self.handshake.clear()
        self.media.clear()
        self.bytes = 0
        return frames


async def relay_call(
    carrier: WebSocket,
    attach_bot: Callable[[], Awaitable[MediaSocket]],
    end_session: Callable[[str], Awaitable[None]],
    stats: CallStats | None = None,
    handshake_seconds: float | None = None,
    max_frames_per_second: int = MAX_FRAMES_PER_SECOND,
    silence_seconds: float | None = None,
    caller_hung_up: Callable[[float, str], None] | None = None,
    handshake_read: Callable[[list[Message]], list[Message]] | None = None,
) -> CallStats:
    """Runs the call to its end. `attach_bot` starts (or claims) the bot and returns its media
    socket; `end_session(reason)` stops the machine. The carrier socket is accepted already.
    `silence_seconds`: past the handshake, a carrier that sends nothing for this long is ended
    (dispatcher/phone/silence.py). `caller_hung_up(at, how)`: told at once when the caller hangs
    up on a bot attached (the carrier's stop, or its socket closed, before the bot's side ended).
    `handshake_read(frames)`: the carrier's first two frames, once read (Twilio's `start` names its call); the
    bot is sent what it returns in their place."""
    stats = stats or CallStats()
    heard = SilenceBound(carrier, silence_seconds)
    attached = False

    def heard_hang_up(how: str) -> None:
        if heard.fell_silent or stats.caller_hung_up_at is not None:  # a line closed for silence hung up nothing
            return
        stats.caller_hung_up_at, stats.caller_hung_up_how = time.time(), how
        if attached:
            _tell_hang_up(stats, caller_hung_up)
    buffer = CarrierBuffer()
    rates = FrameRates(max_frames_per_second)
    carrier_gone: list[str] = []  # how the carrier's side ended while the bot was starting
    if handshake_seconds is not None:
        # A carrier sends its handshake (`connected`, `start`) at once: a socket that does not
        # within the deadline is closed before any session starts, so silent sockets hold no slot.
        with tracing.step("phone.handshake") as span:
            try:
                async with asyncio.timeout(handshake_seconds):
                    while len(buffer.handshake) < HANDSHAKE_FRAMES:
                        message = await carrier.receive()
                        if message["type"] == "websocket.disconnect":
                            stats.ended_by = "carrier"
                            tracing.failed(span, "carrier_hung_up")
                            return stats
                        if not rates.carrier.take(frame_size(message)):  # counted as every frame is
                            stats.over_rate_at, stats.ended_by = time.time(), CARRIER_OVER_RATE
                            tracing.failed(span, CARRIER_OVER_RATE)
                            await _close_over_rate(carrier, rates, stats)
                            return stats
                        buffer.add(message)
            except TimeoutError:
                stats.ended_by = "no_handshake"
                tracing.failed(span, "no_handshake")
                await close_socket(carrier, 1008, "no start frame in time")
                return stats
        if handshake_read is not None:
            buffer.handshake[:] = handshake_read(list(buffer.handshake))

    async def read_while_starting() -> None:
        while True:
            message = await heard.receive()
            if message["type"] == "websocket.disconnect":
                heard_hang_up(CLOSED)
                carrier_gone.append(CARRIER_SILENT if heard.fell_silent else "carrier")
                return
            if is_stop(message):
                heard_hang_up(STOP)
            if not rates.carrier.take(frame_size(message)):
                stats.over_rate_at = time.time()
                carrier_gone.append(CARRIER_OVER_RATE)
                return
            buffer.add(message)

    reading = asyncio.create_task(read_while_starting(), name="phone-early-frames")
    with tracing.step("phone.attach") as span:
        attaching = asyncio.ensure_future(attach_bot())  # its spans (the session's start) are this one's children
        await asyncio.wait({reading, attaching}, return_when=asyncio.FIRST_COMPLETED)
        if not attaching.done():  # the caller hung up (or went over its rate) while the bot was starting
            attaching.cancel()
            with contextlib.suppress(BaseException):
                await attaching
            if carrier_gone == [CARRIER_OVER_RATE]:
                stats.ended_by = CARRIER_OVER_RATE
                tracing.failed(span, CARRIER_OVER_RATE)
                await _close_over_rate(carrier, rates, stats)
                await end_session(CARRIER_OVER_RATE)
                return stats
            if carrier_gone == [CARRIER_SILENT]:
                stats.ended_by = CARRIER_SILENT
                tracing.failed(span, CARRIER_SILENT)
                await close_socket(carrier, 1008, "no frame in time")
                await end_session(CARRIER_SILENT)
                return stats
            stats.ended_by = "carrier"
            tracing.failed(span, "carrier_hung_up")
            await end_session("carrier_hung_up_before_bot")
            return stats
        await _stopped(reading)
        try:
            bot = attaching.result()
        except Exception as exc:
            stats.ended_by = "start_failed"
            tracing.failed(span, getattr(exc, "code", type(exc).__name__))
            log.warning("phone call: the bot could not be started (%s)", exc)
            await close_socket(carrier, 1011, "the call's bot could not be started")
            await end_session("start_failed")
            return stats
    stats.bot_attached = time.monotonic()
    stats.dropped = buffer.dropped
    attached = True
    _tell_hang_up(stats, caller_hung_up)  # the caller hung up as the bot attached: a session with a bot
    with tracing.step("phone.relay") as span:
        try:
            if carrier_gone:
                for message in buffer.drain():
                    await bot.send(_outgoing(message))
                    stats.carrier_frames += 1
                stats.ended_by = carrier_gone[0]
            else:
                stats.ended_by = await pump_both(heard, bot, stats, rates.not_here(carrier, bot), heard_hang_up,
                                                 held=buffer.drain())
                if heard.fell_silent:
                    stats.ended_by = CARRIER_SILENT
        except Exception as exc:  # a socket failed mid-call: the call is over either way
            log.info("phone call: relay ended (%s)", type(exc).__name__)
            stats.ended_by = stats.ended_by or "error"
        finally:
            span.set_attributes({"voicefleet.phone.ended_by": str(stats.ended_by),
                                 "voicefleet.phone.carrier_frames": stats.carrier_frames,
                                 "voicefleet.phone.bot_frames": stats.bot_frames,
                                 "voicefleet.phone.dropped_frames": stats.dropped})
            if stats.ended_by == BOT_OVER_RATE:
                await _close_over_rate(bot, rates, stats)
            else:
                await close_socket(bot, 1000, "call ended")
            if stats.ended_by == CARRIER_OVER_RATE:
                await _close_over_rate(carrier, rates, stats)
            elif stats.ended_by == CARRIER_SILENT:
                await close_socket(carrier, 1008, "no frame in time")
            else:
                await close_socket(carrier, 1000, "call ended")
            await end_session(_end_reason(stats.ended_by))
    return stats


def _tell_hang_up(stats: CallStats, caller_hung_up: Callable[[float, str], None] | None) -> None:
    if caller_hung_up is not None and stats.caller_hung_up_at is not None and stats.caller_hung_up_how is not None:
        caller_hung_up(stats.caller_hung_up_at, stats.caller_hung_up_how)


def _end_reason(ended_by: str | None) -> str:
    if ended_by in ("carrier", "bot"):
        return f"{ended_by}_hung_up"
    return ended_by if ended_by in OVER_RATE | {BOT_UNREACHABLE, CARRIER_UNREACHABLE, CARRIER_SILENT} else "relay_error"


async def _close_over_rate(socket: MediaSocket, rates: FrameRates, stats: CallStats) -> None:
    """Closes the side that went over its frame rate, saying so; logged where it was closed (a bot
    at another replica was closed there, and its end reached this one through the store)."""
    reason = rates.reason(stats.ended_by or "")
    if stats.over_rate_at is not None:
        log.warning("phone call: %s; its socket closed (%d)", reason, CLOSE_OVER_RATE)
    await close_socket(socket, CLOSE_OVER_RATE, reason)


async def pump_both(
    carrier: MediaSocket, bot: MediaSocket, stats: CallStats, rates: FrameRates | None = None,
    hung_up: Callable[[str], None] | None = None, held: Sequence[Message] = (),
) -> str:
    """Frames both ways until one side ends: "carrier" or "bot" (whichever did), CARRIER_OVER_RATE or
    BOT_OVER_RATE (a side past its frame rate; closing it is the caller's), or "error". `hung_up(how)`:
    the carrier's stop or close, as it is read (before the bot's side has ended: else this is cancelled).
    `held`: the carrier's frames held while the bot started, sent to it first; the bot's audio is relayed
    meanwhile, so a reply to the held words is not heard late by the time the backlog takes to send."""
    rates = rates or FrameRates()

    def over(ended_by: str) -> str:
        stats.over_rate_at = time.time()
        return ended_by

    async def forward(message: Message) -> str | None:
        """One frame of the carrier's to the bot; how the carrier's side ended, if this frame ends it."""
        if message["type"] == "websocket.disconnect":
            if hop_reason(carrier, message) in LINE_LOST:
                return CARRIER_UNREACHABLE
            if hung_up is not None:
                hung_up(CLOSED)
            return "carrier"
        if not rates.carrier.take(frame_size(message)):
            return over(CARRIER_OVER_RATE)
        if hung_up is not None and is_stop(message):
            hung_up(STOP)
        await bot.send(_outgoing(message))
        stats.carrier_frames += 1
        return None

    async def carrier_to_bot() -> str:
        read_meanwhile = await _send_held(carrier, bot, held, stats) if held else []
        for message in read_meanwhile:  # the carrier's frames read while the held ones went, in order
            if (ended := await forward(message)) is not None:
                return ended
        while True:
            if (ended := await forward(await carrier.receive())) is not None:
                return ended

    async def bot_to_carrier() -> str:
        while True:
            message = await bot.receive()
            if message["type"] == "websocket.disconnect":
                # Through the store hop (dispatcher/phone/store_hop.py), the reason the line ended: the
                # bot closed at its replica for its rate, or that replica could not be reached.
                reason = hop_reason(bot, message)
                if reason == BOT_OVER_RATE:
                    return BOT_OVER_RATE
                return BOT_UNREACHABLE if reason in LINE_LOST else "bot"
            if not rates.bot.take(frame_size(message)):
                return over(BOT_OVER_RATE)
            if stats.first_bot_frame is None and is_audio(message):
                stats.first_bot_frame = time.monotonic()
            await carrier.send(_outgoing(message))
            stats.bot_frames += 1

    # In this order: when both sides end in the same instant, a side that ended cleanly names the
    # end, the carrier's first; the other's failure (its peer was gone) is read here, not left to
    # the loop's "exception was never retrieved".
    tasks = [asyncio.create_task(carrier_to_bot()), asyncio.create_task(bot_to_carrier())]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    if all(not task.cancelled() and task.exception() is not None for task in done):
        # A side failed sending to the other (its socket closed under the frame): that other side's own
        # reading names how it ended (a caller's hang-up, with its time), when it does at once.
        await asyncio.wait(tasks, timeout=END_GRACE_SECONDS)
    for task in tasks:
        task.cancel()  # a side that has ended stays as it ended
    # Waited for, not awaited: awaiting a failed side would add this frame, which holds `tasks`, to its
    # failure's traceback, a cycle from the task to itself that kept the whole call (both sockets, their
    # buffers) until Python's collector's next full collection, hours apart in a dispatcher.
    await asyncio.wait(tasks)
    ended = [task.result() for task in tasks if not task.cancelled() and task.exception() is None]
    return ended[0] if ended else "error"


async def _send_held(carrier: MediaSocket, bot: MediaSocket, held: Sequence[Message],
                     stats: CallStats) -> list[Message]:
    """Sends `held` to the bot while the carrier is still read: the frames read meanwhile, to forward next
    (at most MAX_BUFFERED: then the carrier waits, as it does for a slow bot). A carrier that hangs up stops
    the sending (its held words reach no one now) and ends the list."""
    read: list[Message] = []

    def hung_up() -> bool:
        return bool(read) and read[-1]["type"] == "websocket.disconnect"

    async def read_carrier() -> None:
        while len(read) < MAX_BUFFERED and not hung_up():
            read.append(await carrier.receive())

    reading = asyncio.create_task(read_carrier())
    try:
        for message in held:
            if hung_up():
                break
            await bot.send(_outgoing(message))
            stats.carrier_frames += 1
    finally:
        await _stopped(reading)
    return read


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancels `task` and waits for it, raising what it failed with. A cancel of the caller while it waits goes
    through: awaiting the task under suppress(CancelledError) would swallow it, and the call would run on."""
    task.cancel()  # a socket's receive gives up nothing when cancelled
    await asyncio.wait({task})
    if not task.cancelled() and (failed := task.exception()) is not None:
        try:
            raise failed
        finally:  # this frame goes into the failure's traceback: holding the task, it would make a cycle
            del task, failed


# Pipecat's protobuf frames (its WebSocket clients' serializer) start with their oneof field's tag:
# text 1, transcription 3, message 4 (RTVI), interruption 5; audio is 2 (0x12).
_PROTOBUF_NOT_AUDIO = frozenset({0x0A, 0x1A, 0x22, 0x2A})
_CARRIER_AUDIO_EVENTS = frozenset({"media", "playAudio"})  # Twilio, Telnyx, Exotel; Plivo


def is_audio(message: Message) -> bool:
    """Whether a bot's frame carries audio: a carrier's `media`/`playAudio` event, or a binary frame
    that is not one of Pipecat's protobuf non-audio frames. Read only until the call's first audio,
    so frames are still relayed unparsed."""
    text = message.get("text")
    if text is not None:
        try:
            event = parse_json(text)
        except ValueError:
            return False
        return isinstance(event, dict) and event.get("event") in _CARRIER_AUDIO_EVENTS
    data = message.get("bytes") or b""
    return bool(data) and data[0] not in _PROTOBUF_NOT_AUDIO


def _outgoing(message: Message) -> dict[str, Any]:
    """A received frame as the same frame to send: text stays text, bytes stay bytes."""
    if message.get("text") is not None:
        return {"type": "websocket.send", "text": message["text"]}
    return {"type": "websocket.send", "bytes": message.get("bytes") or b""}


async def close_socket(socket: MediaSocket, code: int, reason: str) -> None:
    if isinstance(socket, WebSocket) and (
        socket.application_state == WebSocketState.DISCONNECTED or socket.client_state == WebSocketState.DISCONNECTED
    ):
        return
    with contextlib.suppress(Exception):
        await socket.close(code=code, reason=reason)
