"""The load test's WebRTC caller: a headless aiortc "user" for any Pipecat SmallWebRTC offer URL (the
bot's, or the dispatcher's `/sessions/{id}/api/offer`: same JSON), as Pipecat's own clients call it.

    async with WebRTCClient(offer_url, headers=...) as client:   # POST offer, ICE up
        result = await client.talk(SPEECH_WAV, listen_seconds=3.0, until_reply=True)

One audio transceiver first (Pipecat's mic) and a data channel that pings every 0.5 s (without
pings the bot stops sending audio after 3 s); a non-trickle offer; a mic paced in real time (20 ms
frames: silence, or the WAV while `talk()` plays it); every received frame's arrival time and
loudness, so "first audio" is the first *non-silent* audio. docs/cli.md#the-callers says why each.

`TalkResult` (seconds, `time.monotonic()`): `connect_to_first_audio`, `reply_latency` (end of the
caller's speech → first bot audio after it), the loud `segments`, the bot audio heard after the
speech (`reply_audio`, int16 48 kHz). `talk()` again is another turn; `result()` reports without
talking. A refused offer raises `OfferRejected(status, body)`; `post_json()` is the bare request.
`ice_config=` takes a start answer's `iceConfig`; `signal=` replaces the POST with any carrier of the
offer; `selected_pair()` names the nominated ICE pair's candidate types. `VOICEFLEET_ICE_LOOPBACK=1`
gathers 127.0.0.1 only (a host whose only interface is `lo`). RTVI messages are kept in
`rtvi_messages`; `rtvi_message(kind, accept)` waits for one, `rtvi_after(count, timeout)` for any
new one, `send_rtvi(kind, data)` sends one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import json
import os
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs.opus import SAMPLES_PER_FRAME as OPUS_FRAME_SAMPLES
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtcrtpsender import RTCRtpSender
from av import AudioFrame, Packet

from voicefleet.loadtest.arrival_lag import ArrivalLag
from voicefleet.loadtest.audio import SPEECH_RMS, Pcm, Segment, loud_segments, read_wav, reply_heard, rms
from voicefleet.loadtest.datagram_drain import read_in_bursts
from voicefleet.loadtest.lag import SLOWEST, SPEECH_SLACK_SECONDS, LagTrace, SpeechLate
from voicefleet.loadtest.own_cost import HEARD, LEDGER, MIC
from voicefleet.loadtest.sctp_gone import drop_chunks_once_gone
from voicefleet.loadtest.within import within

MIC_RATE = 16000
BLOCK_SAMPLES = MIC_RATE // 50  # 20 ms
CATCH_UP_BLOCKS = 5  # a mic behind real time hands over this many blocks (100 ms) per turn of the loop
OPUS_TIME_BASE = fractions.Fraction(1, 48000)  # Opus's RTP clock, whatever the mic's rate
CLOSE_SECONDS = 10.0  # a hang-up takes milliseconds; past this the connection is left to the collector


class CallEnded(ConnectionError):
    """The far end hung up (or the connection failed) before the caller's speech was all sent."""


class OfferRejected(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"offer rejected with HTTP {status}: {body}")
        self.status, self.body = status, body


class PacedMic(MediaStreamTrack):
    """A 16 kHz mono mic that emits 20 ms frames in real time: silence unless `play()` feeds it.

    It hands aiortc each frame already encoded (Opus, the one codec the caller offers): given raw
    frames, aiortc's sender encodes each in the default thread pool, one 20 ms frame per hop, each
    hop waiting for a core and the GIL. On a loaded machine (a load average of 10 on 2 cores) that
    hop made the sender's cycle longer than 20 ms, the mic fell behind real time for good (4 s
    behind over a 4 s turn), and the caller's speech was not all sent when it should have been.
    Encoding here, on the loop, costs a fraction of a millisecond a frame and no hop.

    Silence, most of a call's mic, is not encoded at all: every block of digital silence is sent as
    the one packet it encodes to (`silent_packet()`). Encoding it each 20 ms (resampled to 48 kHz
    stereo, then Opus) was a quarter of the generator's CPU per session. The packets' timestamps
    count 20 ms a packet, whichever way each was made."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = OpusEncoder()
        self._packets: deque[Packet[Any]] = deque()  # encoded, not yet taken by the sender
        self._packet_pts = 0  # the next packet's timestamp, in Opus's 48 kHz samples
        self._unyielded = 0  # blocks handed over late since the mic last yielded to the loop
        self._queue = np.zeros(0, dtype=np.int16)
        self._start: float | None = None
        self._sent = 0
        self.last_speech_at: float | None = None  # monotonic time the last loud block went out
        self.last_pulled_at: float | None = None  # monotonic time aiortc's sender last asked for a packet
        self.lag = LagTrace()  # how far behind real time each block went out
        self.drained = asyncio.Event()

    def play(self, samples: np.ndarray) -> None:
        self._queue = np.concatenate([self._queue, samples.astype(np.int16)])
        self.drained.clear()

    async def recv(self) -> Packet[Any]:  # aiortc's sender takes a Frame to encode or a Packet encoded
        self.last_pulled_at = time.monotonic()
        while not self._packets:
            await self._wait_for_next_block()
            with LEDGER.charge(MIC):  # synchronous: no other task's work is charged here
                self._encode(self._next_block())
        return self._packets.popleft()

    def _encode(self, block: np.ndarray) -> None:
        if block.any():
            frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.time_base = MIC_RATE, fractions.Fraction(1, MIC_RATE)
            frame.pts = self._sent - BLOCK_SAMPLES
            # None while the encoder's resampler fills (its first block): silence keeps the pace.
            payloads = self._encoder.encode(frame)[0] or [silent_packet()]
        else:
            payloads = [silent_packet()]
        for payload in payloads:
            packet = Packet(payload)
            packet.pts, packet.time_base = self._packet_pts, OPUS_TIME_BASE
            self._packet_pts += OPUS_FRAME_SAMPLES
            self._packets.append(packet)

    async def _wait_for_next_block(self) -> None:
        """Until the next block is due. A mic behind real time does not wait, and yields to the loop
        only every CATCH_UP_BLOCKS blocks: yielding after each one sent at most one 20 ms block per
        turn of the event loop, so once a turn took longer (a process waiting for a core on a host
        loaded past its cores) the mic fell behind for good, 6-9 s by the end of a turn, and its
        speech was not all sent in time. aiortc's sender sends a packet without suspending, and a
        burst of 5 packets is well inside what a receiver's jitter buffer takes."""
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._sent / MIC_RATE - time.monotonic()
        if wait > 0 or self._unyielded >= CATCH_UP_BLOCKS:
            self._unyielded = 0
            await asyncio.sleep(max(0.0, wait))
        else:
            self._unyielded += 1

    def behind(self) -> float:
        """Seconds of audio the mic is behind real time since it started (0 before it started)."""
        return 0.0 if self._start is None else time.monotonic() - self._start - self._sent / MIC_RATE

    def _next_block(self) -> np.ndarray:
        block = np.zeros(BLOCK_SAMPLES, dtype=np.int16)
        chunk = self._queue[:BLOCK_SAMPLES]
        block[: len(chunk)] = chunk
        self._queue = self._queue[BLOCK_SAMPLES:]
        now = time.monotonic()
        self.lag.note(now, now - (self._start or now) - self._sent / MIC_RATE)
        if rms(block) > SPEECH_RMS:
            self.last_speech_at = now
        if len(self._queue) == 0:
            self.drained.set()
        self._sent += BLOCK_SAMPLES
        return block


@functools.cache
def silent_packet() -> bytes:
    """The Opus packet a 20 ms block of digital silence encodes to, once the encoder has settled
    (its first packets carry its start-up); the same bytes each time after that."""
    encoder, payloads = OpusEncoder(), []
    for n in range(5):
        frame = AudioFrame.from_ndarray(np.zeros((1, BLOCK_SAMPLES), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.time_base, frame.pts = MIC_RATE, fractions.Fraction(1, MIC_RATE), n * BLOCK_SAMPLES
        payloads += encoder.encode(frame)[0]
    return payloads[-1]


@dataclass
class Recording:
    times: list[float] = field(default_factory=list)  # monotonic arrival time per frame
    levels: list[float] = field(default_factory=list)
    # Per frame, how far behind the bot's own audio clock it arrived, past the path's best (arrival_lag.py).
    late: list[float] = field(default_factory=list)
    _lag: ArrivalLag = field(default_factory=ArrivalLag, repr=False)
    chunks: list[np.ndarray] = field(default_factory=list)  # int16 mono
    sample_rate: int = 48000

    def add(self, frame: AudioFrame, now: float | None = None) -> None:
        """The frame, arrived `now` (monotonic; this instant unless given)."""
        with LEDGER.charge(HEARD):
            self._add(frame, time.monotonic() if now is None else now)

    def _add(self, frame: AudioFrame, now: float) -> None:
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        mono = data[0] if frame.format.is_planar else data.reshape(-1)[::channels]
        self.times.append(now)
        clock = None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)
        self.late.append(self._lag.note(now, clock))
        self.levels.append(rms(mono))
        self.chunks.append(mono.astype(np.int16))
        self.sample_rate = frame.sample_rate


@dataclass(frozen=True)
class TalkResult:
    connected_at: float
    speech_end_at: float | None
    segments: list[Segment]  # loud bot audio, times relative to connected_at
    connect_to_first_audio: float | None
    reply_latency: float | None
    reply_audio: np.ndarray
    reply_sample_rate: int

    @property
    def replied(self) -> bool:
        return self.reply_latency is not None

    def summary(self) -> str:
        segs = ", ".join(f"{s.start:.2f}-{s.end:.2f}s (rms {s.peak_rms:.0f})" for s in self.segments)
        return (
            f"connect→first audio {self.connect_to_first_audio}, reply latency {self.reply_latency}, segments [{segs}]"
        )


class WebRTCClient:
    def __init__(
        self,
        offer_url: str,
        *,
        connect_timeout: float = 15.0,
        headers: dict[str, str] | None = None,
        ice_loopback: bool | None = None,
        ice_config: dict[str, Any] | None = None,
        signal: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
        data_channel: bool = True,
    ) -> None:
        self.offer_url = offer_url
        self.data_channel = data_channel  # False: audio alone, as WhatsApp's media servers offer
        self.connect_timeout = connect_timeout
        self.headers = headers or {}
        if ice_loopback is None:
            ice_loopback = os.environ.get("VOICEFLEET_ICE_LOOPBACK", "").lower() in ("1", "true", "yes")
        self.ice_loopback = ice_loopback
        self.mic = PacedMic()
        self.recording = Recording()
        self.pc = RTCPeerConnection(rtc_configuration(ice_config))
        self._signal = signal or (lambda offer: post_json(self.offer_url, offer, headers=self.headers))
        self.pc_id: str | None = None
        self.connected_at: float | None = None
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recorders: list[asyncio.Task[None]] = []  # one per audio track of the bot's, among _tasks
        self.rtvi_messages: list[dict[str, Any]] = []
        self._rtvi_arrived = asyncio.Condition()
        self._channel: Any = None
        self._channel_open = asyncio.Event()
        # Set once the call is over: the connection closed or failed, or aiortc stopped the mic's
        # track (its sender does when the bot closes the connection, and then never drains the mic).
        self.ended = asyncio.Event()
        self.mic.on("ended", self._end)

    async def __aenter__(self) -> WebRTCClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        read_in_bursts()  # before aioice opens its sockets: a loaded caller reads the bot's audio in time
        if self.ice_loopback:
            import aioice.ice

            aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
        mic = self.pc.addTransceiver(self.mic, direction="sendrecv")
        # The mic's packets are Opus (PacedMic): the only codec offered, so the only one answered.
        mic.setCodecPreferences([codec for codec in RTCRtpSender.getCapabilities("audio").codecs
                                 if codec.mimeType.lower() == "audio/opus"])
        if self.data_channel:
            self._open_channel()

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._recorders.append(asyncio.create_task(self._record(track)))
                self._tasks.append(self._recorders[-1])

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            if self.pc.connectionState == "connected" and not self._connected.is_set():
                self.connected_at = time.monotonic()
                self._connected.set()
                self._keep_consent()
            elif self.pc.connectionState in ("closed", "failed"):
                self._end()

        await self.pc.setLocalDescription(await self.pc.createOffer())  # waits for ICE gathering
        answer = await self._signal({"sdp": self.pc.localDescription.sdp, "type": "offer"})
        self.pc_id = answer.get("pc_id")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await within(self._connected.wait(), self.connect_timeout)

    def _keep_consent(self) -> None:
        """Stops the caller's own ICE consent checks once connected: a caller measures the bot, and its own
        lag must not end the call. The bot's host keeps consent (bot/ice_consent.py; docs/evals.md, "When the
        call's connection is lost")."""
        for ice in ice_transports(self.pc):
            connection = getattr(ice, "_connection", None)
            checks = getattr(connection, "_query_consent_task", None)
            if isinstance(checks, asyncio.Task):
                checks.cancel()

    def _open_channel(self) -> None:
        """Pipecat's client's data channel: RTVI messages, and a ping every 0.5 s."""
        channel = self._channel = self.pc.createDataChannel("chat")
        drop_chunks_once_gone(channel.transport)

        channel.on("open", self._channel_open.set)

        @channel.on("message")
        def _on_message(message: str | bytes) -> None:
            with contextlib.suppress(ValueError, TypeError):
                parsed = json.loads(message)
                if isinstance(parsed, dict) and parsed.get("label") == "rtvi-ai":
                    self.rtvi_messages.append(parsed)
                    self._tasks.append(asyncio.create_task(self._notify_rtvi()))

        self._tasks.append(asyncio.create_task(self._ping(channel)))

    async def talk(
        self,
        wav_path: str | Path | Pcm,
        *,
        listen_seconds: float = 3.0,
        lead_seconds: float = 0.3,
        until_reply: bool = False,
    ) -> TalkResult:
        """Plays the WAV as the user's speech (after `lead_seconds` of silence) and listens on:
        `listen_seconds`, or with `until_reply` only until a whole reply has been heard (at most
        `listen_seconds`), so a slow, loaded machine gets the time it needs and a fast one none."""
        pcm = wav_path if isinstance(wav_path, Pcm) else read_wav(wav_path)
        if pcm.sample_rate != MIC_RATE:
            raise ValueError(f"{wav_path}: the mic runs at {MIC_RATE} Hz, the file is {pcm.sample_rate} Hz")
        await asyncio.sleep(lead_seconds)
        self.mic.play(pcm.samples)
        await self._sent(pcm.seconds + SPEECH_SLACK_SECONDS)
        deadline = time.monotonic() + listen_seconds
        while time.monotonic() < deadline:
            if until_reply and self._reply_heard():
                break
            await asyncio.sleep(0.05)
        return self.result()

    async def _sent(self, timeout: float) -> None:
        """Until the mic has sent what it was given; CallEnded if the call ends first (the mic is then
        never drained). SpeechLate once aiortc's sender has not asked for audio for `timeout` seconds (the
        connection no longer takes it), or past SLOWEST times `timeout` in all: a caller short of CPU sends
        slower than real time while it is asked, and its turns are timed less its own lag (lag.py)."""
        sending = asyncio.ensure_future(self.mic.drained.wait())
        ending = asyncio.ensure_future(self.ended.wait())
        began = time.monotonic()
        try:
            while not (sending.done() or ending.done()):
                asked = max(began, self.mic.last_pulled_at or began)
                left = min(began + SLOWEST * timeout, asked + timeout) - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait({sending, ending}, timeout=min(left, 0.5), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sending.cancel()
            ending.cancel()
        if not self.mic.drained.is_set():
            if self.ended.is_set():
                raise CallEnded(f"the call ended (connection {self.pc.connectionState}) before the speech was sent")
            behind, now = self.mic.behind(), time.monotonic()
            why = (f"the caller's speech was not all sent within {SLOWEST * timeout:g} s"
                   if now - began >= SLOWEST * timeout else
                   f"the connection took none of the caller's speech for {timeout:g} s")
            raise SpeechLate(f"{why} ({behind:.1f} s behind)", behind)

    def _reply_heard(self) -> bool:
        return reply_heard(self.recording.times, self.recording.levels, self.mic.last_speech_at, time.monotonic())

    def result(self) -> TalkResult:
        if self.connected_at is None:
            raise RuntimeError("not connected")
        rec, t0 = self.recording, self.connected_at
        segments = loud_segments(rec.times, rec.levels)
        first = next((s.start for s in segments if s.start >= t0), None)
        speech_end = self.mic.last_speech_at
        reply = None
        reply_chunks: list[np.ndarray] = []
        if speech_end is not None:
            reply = next((s.start for s in segments if s.start > speech_end), None)
            reply_chunks = [c for t, c in zip(rec.times, rec.chunks, strict=True) if t > speech_end]
        return TalkResult(
            connected_at=t0,
            speech_end_at=None if speech_end is None else speech_end - t0,
            segments=[Segment(s.start - t0, s.end - t0, s.peak_rms) for s in segments],
            connect_to_first_audio=None if first is None else first - t0,
            reply_latency=None if reply is None or speech_end is None else reply - speech_end,
            reply_audio=np.concatenate(reply_chunks) if reply_chunks else np.zeros(0, dtype=np.int16),
            reply_sample_rate=rec.sample_rate,
        )

    async def rtvi_message(
        self, kind: str, accept: Callable[[dict[str, Any]], bool] = lambda data: True, *, timeout: float
    ) -> dict[str, Any]:
        """The `data` of the first RTVI message of type `kind` that `accept` takes (past or future)."""

        def found() -> dict[str, Any] | None:
            for message in self.rtvi_messages:
                if message.get("type") == kind and accept(message.get("data") or {}):
                    return dict(message.get("data") or {})
            return None

        async def wait() -> dict[str, Any]:
            async with self._rtvi_arrived:
                await self._rtvi_arrived.wait_for(lambda: found() is not None)
            data = found()
            assert data is not None
            return data

        try:
            return await within(wait(), timeout)
        except TimeoutError:
            kinds = [m.get("type") for m in self.rtvi_messages]
            raise AssertionError(f"no RTVI {kind!r} within {timeout}s; got {kinds}") from None

    async def rtvi_after(self, count: int, timeout: float) -> bool:
        """Waits until more than `count` RTVI messages have arrived (or the call ended), at most `timeout`
        seconds; whether they did. A caller waiting on the bot's events wakes when one comes, not on a
        poll's next tick."""
        if len(self.rtvi_messages) > count:
            return True
        if timeout <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._rtvi_arrived:
                await self._rtvi_arrived.wait_for(lambda: len(self.rtvi_messages) > count or self.ended.is_set())
        return len(self.rtvi_messages) > count

    async def send_rtvi(self, kind: str, data: dict[str, Any] | None = None) -> None:
        await within(self._channel_open.wait(), self.connect_timeout)
        message = {"label": "rtvi-ai", "type": kind, "id": uuid.uuid4().hex[:8], "data": data or {}}
        self._channel.send(json.dumps(message))

    def _end(self) -> None:
        if not self.ended.is_set():
            self.ended.set()
            self._tasks.append(asyncio.ensure_future(self._notify_rtvi()))  # wakes rtvi_after's waiters

    async def _notify_rtvi(self) -> None:
        async with self._rtvi_arrived:
            self._rtvi_arrived.notify_all()

    def selected_pair(self) -> tuple[str, str, str]:
        """(local type, remote type, remote address) of the nominated ICE pair, from aioice's state
        (aiortc's stats have no candidate pairs)."""
        ice = self.pc.getTransceivers()[0].receiver.transport.transport
        pair = ice._connection._nominated[1]
        return pair.local_candidate.type, pair.remote_candidate.type, pair.remote_candidate.host

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # When the far end hangs up, aiortc closes the connection in a task of its own, and close()
        # then waits for that one: forever if it was cancelled (a loop shutting down cancels every
        # task) or failed half-way. A caller that cannot hang up cleanly is still done with.
        with contextlib.suppress(TimeoutError):
            await within(self.pc.close(), CLOSE_SECONDS)

    def heard_out(self) -> bool:
        """Whether the bot's audio is over and every frame of it that came was recorded: its track ended (the
        bot hung up), and the frames queued before that were read (a busy caller reads them late)."""
        return bool(self._recorders) and all(task.done() for task in self._recorders)

    async def _record(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):  # MediaStreamError when the bot hangs up
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):  # an audio track's frames are; the type says Frame | Packet
                    self.recording.add(frame)

    async def _ping(self, channel: Any) -> None:
        while not self.ended.is_set():  # a call that has ended is not pinged: its association is going
            if channel.readyState == "open" and self.pc.connectionState == "connected":
                channel.send(f"ping: {time.time()}")
            await asyncio.sleep(0.5)


def ice_transports(pc: RTCPeerConnection) -> set[Any]:
    """The connection's ICE transports (aiortc's `RTCIceTransport`: one, bundled)."""
    transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport.transport)
    return transports


def rtc_configuration(ice_config: dict[str, Any] | None) -> RTCConfiguration | None:
    """A start answer's `iceConfig` as aiortc's RTCConfiguration (aiortc uses one TURN URL: the first)."""
    if ice_config is None:
        return None
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_config.get("iceServers", [])
    ]
    relay = ice_config.get("iceTransportPolicy") == "relay"
    return RTCConfiguration(
        iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
    )


OFFER_TIMEOUT = 60.0  # an offer waits for a cold bot at the dispatcher: generous, never endless


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once per process:
    a new client builds it again, 17-40 ms of CPU on the caller's path to every offer (its load of
    the CA bundle), which a browser's fetch never pays (docs/performance.md, "A warm start, step by step")."""
    return httpx.create_ssl_context()


async def post_json(url: str, payload: dict[str, Any], *, headers: dict[str, str] | None = None,
                    timeout: float = OFFER_TIMEOUT) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=timeout, verify=tls_context()) as http:
        response = await http.post(url, json=payload, headers=headers)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.status_code != 200 or not isinstance(body, dict):
        raise OfferRejected(response.status_code, body)
    return body
