"""A Pipecat speech-to-speech service for a shared model server speaking Moshi's protocol.

Put it between the transport's input and output, like Pipecat's realtime services: the caller's
audio frames go to `{MODEL_SERVICE_URL}/api/chat` as Ogg/Opus at 24 kHz (kind 1), the server's
audio comes back as `TTSAudioRawFrame`s and its words as `LLMTextFrame` and `TTSTextFrame` (what
RTVI and transcripts read). One stream per call, opened when the pipeline starts.

A stream cannot be resumed (the model's state is on the server), so every failure leaves the service
unable to go on: it is pushed as an `ErrorFrame` with `force_treat_as_permanent`, in the server's
words, and the bot's `ProcessorUnusablePolicy` ends the call (bot.py cancels it). The failures: the
server cannot be reached, it refuses the stream (its error message, e.g. no free stream), it accepts
the stream and sends no handshake (`moshi.server` holds a second caller so, silently), the stream is
cut mid-call, and what it sends is no Moshi message or no Ogg/Opus. docs/converged.md has the protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import websockets
from loguru import logger
from ogg_opus import RATE, OggError, OggOpusReader, OggOpusWriter
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    LLMTextFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.text.base_text_aggregator import TextType

HANDSHAKE, AUDIO, TEXT, ERROR = 0, 1, 2, 5
CONNECT_SECONDS = 10.0  # the TCP and WebSocket handshakes
HANDSHAKE_SECONDS = 10.0  # the server's own handshake, once the stream is the caller's
SEND_SECONDS = 5.0  # a server that stops reading the caller's audio is a failure, not a wait


def chat_url(base_url: str) -> str:
    """`http(s)://host:port[/prefix]` → `ws(s)://host:port[/prefix]/api/chat`."""
    base = base_url.strip().rstrip("/")
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if base.startswith(http) and len(base) > len(http):
            return ws + base[len(http):] + "/api/chat"
    raise ValueError(f"MODEL_SERVICE_URL must be the model service's http:// or https:// base URL, not {base_url!r}")


class ModelServiceFailure(Exception):
    def __init__(self, message: str, category: ErrorCategory = ErrorCategory.SERVER) -> None:
        super().__init__(message)
        self.category = category


class MoshiService(AIService):
    """The caller's audio to a Moshi-protocol model server and its audio and words back."""

    def __init__(self, *, url: str, handshake_seconds: float = HANDSHAKE_SECONDS, **kwargs: Any) -> None:
        super().__init__(settings=ServiceSettings(model="moshi"), **kwargs)
        self._url = chat_url(url)
        self._handshake_seconds = handshake_seconds
        self._websocket: websockets.ClientConnection | None = None
        self._streaming: asyncio.Task[None] | None = None
        self._ready = False
        self._failed = False
        self._writer = OggOpusWriter()
        self._reader = OggOpusReader()
        self._resampler = create_stream_resampler()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        # Off the frame path: the caller's audio is dropped, never queued, until the stream is ours.
        self._streaming = self.create_task(self._stream(), "moshi_stream")

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._send_audio(frame)
        await self.push_frame(frame, direction)

    async def _stream(self) -> None:
        try:
            self._websocket = await self._open()
            self._ready = True
            logger.info(f"{self}: streaming to {self._url}")
            async for message in self._websocket:
                await self._receive(message)
            raise ModelServiceFailure(f"the model service closed the stream mid-call ({_closed(self._websocket)})")
        except websockets.ConnectionClosed as e:
            await self._fail(ModelServiceFailure(f"the model service cut the stream mid-call ({e})"))
        except ModelServiceFailure as e:
            await self._fail(e)
        except Exception as e:  # anything else still ends the call out loud, never a silent line
            await self._fail(ModelServiceFailure(f"the stream to the model service failed: {e!r}",
                                                 ErrorCategory.UNKNOWN))

    async def _open(self) -> websockets.ClientConnection:
        try:
            websocket = await websockets.connect(self._url, open_timeout=CONNECT_SECONDS, max_size=2**20,
                                                 close_timeout=1)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
            raise ModelServiceFailure(f"cannot reach the model service at {self._url}: {e or type(e).__name__}",
                                      ErrorCategory.CONNECTIVITY) from e
        try:
            first = await asyncio.wait_for(websocket.recv(), self._handshake_seconds)
        except TimeoutError as e:
            await websocket.close()
            raise ModelServiceFailure(
                f"the model service at {self._url} took the stream but sent no handshake in "
                f"{self._handshake_seconds:g} s: a server that serves one stream at a time holds the next caller "
                "so; a shared one refuses past its streams") from e
        except websockets.ConnectionClosed as e:
            raise ModelServiceFailure(f"the model service at {self._url} closed the stream at its start ({e})") from e
        if isinstance(first, bytes) and first[:1] == bytes([ERROR]):
            await websocket.close()
            raise ModelServiceFailure(f"the model service at {self._url} refused the stream: {_words(first)}")
        if first != bytes([HANDSHAKE]):
            await websocket.close()
            raise ModelServiceFailure(f"the model service at {self._url} did not start with Moshi's handshake: "
                                      f"its first message was {first[:16]!r}", ErrorCategory.INVALID_REQUEST)
        return websocket

    async def _receive(self, message: str | bytes) -> None:
        if not isinstance(message, bytes) or not message:
            return  # as Moshi's own clients: a text frame or an empty message is no message
        kind, payload = message[0], message[1:]
        if kind == AUDIO:
            try:
                pcm = self._reader.read(payload)
            except OggError as e:
                raise ModelServiceFailure(f"the model service sent audio that is not Ogg/Opus: {e}") from e
            if pcm:
                await self.push_frame(TTSAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1))
        elif kind == TEXT:
            await self._push_words(payload.decode("utf-8", errors="replace"))
        elif kind == ERROR:
            raise ModelServiceFailure(f"the model service ended the stream: {_words(message)}")
        else:
            logger.debug(f"{self}: ignored a message of kind {kind}")  # a newer server's, as Moshi's clients do

    async def _push_words(self, text: str) -> None:
        # LLMTextFrame for RTVI's bot-llm-text, TTSTextFrame for the transcript: the words are spoken.
        await self.push_frame(LLMTextFrame(text))
        spoken = TTSTextFrame(text, text_type=TextType.WORD)
        spoken.includes_inter_frame_spaces = True  # Moshi's pieces carry their own spaces
        await self.push_frame(spoken)

    async def _send_audio(self, frame: InputAudioRawFrame) -> None:
        if not self._ready or self._failed or self._websocket is None:
            return
        mono = frame.audio if frame.num_channels == 1 else _first_channel(frame.audio, frame.num_channels)
        pcm = await self._resampler.resample(mono, frame.sample_rate, RATE)
        pages = self._writer.write(pcm) if pcm else b""  # a resampler's first call may hold all it got
        if not pages:
            return
        try:
            await asyncio.wait_for(self._websocket.send(bytes([AUDIO]) + pages), SEND_SECONDS)
        except websockets.ConnectionClosed:
            pass  # the receiving task reports it, with the server's close
        except TimeoutError:
            await self._fail(ModelServiceFailure(f"the model service took none of the caller's audio for "
                                                 f"{SEND_SECONDS:g} s"))

    async def _fail(self, failure: ModelServiceFailure) -> None:
        if self._failed:
            return
        self._failed = True
        logger.error(f"{self}: {failure}")
        await self.push_error(str(failure), exception=failure, category=failure.category,
                              force_treat_as_permanent=True)
        if self._websocket is not None:
            await self._websocket.close()  # after the error: nothing more goes to a stream that failed

    async def _close(self) -> None:
        self._failed = True  # a failure from here on is the call ending, not the service's
        if self._websocket is not None:
            await self._websocket.close()
        if self._streaming is not None:
            await self.cancel_task(self._streaming, timeout=1.0)
            self._streaming = None


def _words(message: bytes) -> str:
    return message[1:].decode("utf-8", errors="replace") or "(no words)"


def _first_channel(audio: bytes, channels: int) -> bytes:
    return np.frombuffer(audio, dtype=np.int16)[::channels].tobytes()


def _closed(websocket: websockets.ClientConnection) -> str:
    return f"close {websocket.close_code} {websocket.close_reason or ''}".strip()

