"""Text to speech offline: eSpeak NG, whose library and voice data ship inside the
`espeakng-loader` wheel, called through ctypes in synchronous mode.

eSpeak synthesises a sentence in a few milliseconds (about 20 ms for 3 s of speech here), so a
reply is synthesised whole in a worker thread and streamed as frames. eSpeak keeps one global
engine per process: a lock serialises synthesis. Its callback, voice and rate are global too, so
each synthesis sets them again: another user of the library in the process (a test's caller voice,
say) would otherwise take the audio.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from functools import cache

import espeakng_loader
import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.transcriptions.language import Language

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """The process's eSpeak NG engine, speaking with one voice."""

    def __init__(self, voice: str = "en-us", words_per_minute: int = 175) -> None:
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.voice = voice
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG did not start (its data folder: {data.decode()})")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        self._words_per_minute = words_per_minute
        self._chunks: list[np.ndarray] = []
        self._callback = SYNTH_CALLBACK(self._collect)  # kept: eSpeak holds only the pointer
        self._lock = threading.Lock()

    def _collect(self, wav: object, count: int, _events: object) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())  # type: ignore[arg-type]
        return 0

    def synthesise(self, text: str, voice: str | None = None) -> bytes:
        """16-bit mono PCM at `sample_rate`, in this engine's voice or another for this text."""
        encoded = text.encode()
        with self._lock:
            if self._lib.espeak_SetVoiceByName((voice or self.voice).encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            self._lib.espeak_SetSynthCallback(self._callback)
            self._lib.espeak_SetParameter(1, self._words_per_minute, 0)  # espeakRATE, absolute
            self._chunks = []
            self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, ESPEAK_CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks).tobytes() if chunks else b""


@cache
def espeak() -> Espeak:
    return Espeak()


class EspeakTTSService(TTSService):
    """Speaks each sentence the responder hands it with eSpeak NG."""

    def __init__(self, *, engine: Espeak, **kwargs: object) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model="espeak-ng", voice=engine.voice, language=Language.EN_US),
            **kwargs,  # type: ignore[arg-type]
        )
        self._engine = engine

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        try:
            await self.start_tts_usage_metrics(text)
            pcm = await asyncio.to_thread(self._engine.synthesise, text)
            async for frame in self._stream_audio_frames_from_iterator(
                _once(pcm), in_sample_rate=self._engine.sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:  # a voice that cannot speak is the session's error, not a crash
            yield ErrorFrame(error=f"eSpeak NG could not speak: {e}")


async def _once(pcm: bytes) -> AsyncIterator[bytes]:
    yield pcm
