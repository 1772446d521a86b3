"""The simulated caller's voice: eSpeak NG from the `espeakng-loader` wheel (library and voice data
inside it, nothing downloaded), speaking a turn's text into the 16 kHz PCM the callers send.

eSpeak keeps one engine per process, so one `CallerVoice` serves every call of a run, under a lock.
The library's callback, voice and rate are global too: another user of the same library in the
process (a bot's own eSpeak voice, loaded beside the eval runner) would take the audio, so each
`speak` sets all three again before it synthesises.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache
from pathlib import Path

import numpy as np

from voicefleet.loadtest.audio import Pcm, read_wav, resample
from voicefleet.loadtest.webrtc import MIC_RATE

DEFAULT_VOICE = "en-us+f3"  # American English, a timbre the repository's example bot does not speak with
_SYNCHRONOUS, _UTF8, _RATE_PARAMETER = 2, 1, 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class CallerVoice:
    def __init__(self, voice: str = DEFAULT_VOICE, words_per_minute: int = 170) -> None:
        import espeakng_loader  # the eval command's own dependency: imported when a run speaks

        self._engine = ctypes.CDLL(espeakng_loader.get_library_path())
        self.rate = self._engine.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.rate <= 0 or self._engine.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"the caller's voice {voice!r} could not be loaded from espeakng-loader")
        self._voice, self._words_per_minute = voice.encode(), words_per_minute
        self._heard = bytearray()
        self._keep = _CALLBACK(self._take)  # kept: eSpeak holds only the pointer
        self._lock = threading.Lock()

    def _take(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _events: object) -> int:
        if count > 0:
            self._heard += ctypes.string_at(samples, count * 2)
        return 0

    def speak(self, text: str) -> Pcm:
        data = text.encode()
        with self._lock:
            self._heard = bytearray()
            self._engine.espeak_SetSynthCallback(self._keep)
            self._engine.espeak_SetVoiceByName(self._voice)
            self._engine.espeak_SetParameter(_RATE_PARAMETER, self._words_per_minute, 0)
            self._engine.espeak_Synth(data, len(data) + 1, 0, 0, 0, _UTF8, None, None)
            self._engine.espeak_Synchronize()
            pcm = Pcm(np.frombuffer(bytes(self._heard), dtype=np.int16).copy(), self.rate)
        return resample(pcm, MIC_RATE)


@cache
def caller_voice() -> CallerVoice:
    return CallerVoice()


def speech_of(say: str | None, wav: str | None, source: str) -> Pcm:
    """A turn's speech: its text in the caller's voice, or its WAV (beside the scenario file)."""
    if say is not None:
        return caller_voice().speak(say)
    return resample(read_wav(Path(source).parent / str(wav)), MIC_RATE)
