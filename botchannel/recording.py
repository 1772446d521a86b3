"""The recording's contract, shared by the bot that taps a call and the dispatcher that keeps it.

The dispatcher decides whether a session is recorded and hands the bot a `RecordingPlan` with its
`assign`. The bot writes one byte stream, a two-channel 16-bit PCM WAV (caller left, bot right),
cut into parts of `part_bytes` (S3's multipart minimum, 5 MiB, is the floor: every part but the
last is at least that). For each part it asks the dispatcher for an upload URL
(`recording.part` {part} → {url, expires_at}); the URL may be a path on the dispatcher's own address
(the local folder store) or an absolute pre-signed one (S3). A part still filling is uploaded again
every `checkpoint_seconds` under the same number (a part uploaded again replaces the earlier
upload), so a bot that dies loses at most about that much. At the end it sends
`recording.finished` {parts, bytes, seconds, degraded, dropped}, after its own log lines in as many
`recording.logs` {lines, dropped} as they take (each line {time, level, logger, message}; the last
`MAX_LOG_LINES` lines, `MAX_LOG_BYTES` at most, each request within `LOG_CHUNK_BYTES`). `audio` false: no audio is
uploaded (the transcript alone is kept); `transcript` false: no turns are handed over; `consent`:
the bot host plays its announcement to the caller first, records from its end and says so
(`recording.consent` {announced_at, seconds}). The first part starts with a WAV
header whose sizes say "unknown" (0xFFFFFFFF, as streamed WAV has them: players read to the end);
the dispatcher writes the true sizes when it completes the upload (`wav_sizes`).

Pure standard library, like the rest of the contract.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHOD_RECORDING_PART = "recording.part"
METHOD_RECORDING_FINISHED = "recording.finished"
METHOD_RECORDING_LOGS = "recording.logs"
MAX_LOG_LINES = 5000  # the bot's last log lines kept with its recording (logs.jsonl)
MAX_LOG_BYTES = 2 * 1024 * 1024  # and their JSON at most: a noisy bot keeps its last lines, not its first
MAX_LOG_MESSAGE = 4000  # characters of one line's message (a traceback included)
LOG_CHUNK_BYTES = 192 * 1024  # one `recording.logs` request's lines, within the channel's frame (256 KB)
METHOD_RECORDING_CONSENT = "recording.consent"  # {announced_at (epoch seconds), seconds}: the announcement played

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's UploadPart minimum for every part but the last
MAX_PART_BYTES = 64 * 1024 * 1024
SAMPLE_RATES = (8000, 16000, 24000, 48000)
CHANNELS = 2  # caller left, bot right
SAMPLE_BYTES = 2  # 16-bit signed little-endian PCM
WAV_HEADER_BYTES = 44
UNKNOWN_SIZE = 0xFFFFFFFF
MAX_PARTS = 10_000  # S3's part numbers: 1 to 10,000


@dataclass(frozen=True)
class RecordingPlan:
    sample_rate: int = 16000
    part_bytes: int = MIN_PART_BYTES
    checkpoint_seconds: float = 20.0
    audio: bool = True  # upload the call's audio
    transcript: bool = True  # hand the call's turns over at its end
    consent: bool = False  # announce the recording to the caller first

    def params(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "part_bytes": self.part_bytes,
                "checkpoint_seconds": self.checkpoint_seconds, "audio": self.audio, "transcript": self.transcript,
                "consent": self.consent}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RecordingPlan:
        """Raises ValueError naming the field that does not follow the contract."""
        rate, size, every = params.get("sample_rate"), params.get("part_bytes"), params.get("checkpoint_seconds")
        if rate not in SAMPLE_RATES or isinstance(rate, bool):
            raise ValueError(f"recording: sample_rate must be one of {SAMPLE_RATES}")
        if not isinstance(size, int) or isinstance(size, bool) or not MIN_PART_BYTES <= size <= MAX_PART_BYTES \
                or size % (CHANNELS * SAMPLE_BYTES):
            raise ValueError(f"recording: part_bytes must be a whole number of frames from {MIN_PART_BYTES} "
                             f"to {MAX_PART_BYTES}")
        if not isinstance(every, int | float) or isinstance(every, bool) or not math.isfinite(every) \
                or not 1 <= every <= 600:
            raise ValueError("recording: checkpoint_seconds must be a number from 1 to 600")
        flags = {name: params.get(name, default) for name, default in (("audio", True), ("transcript", True),
                                                                        ("consent", False))}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"recording: {name} must be true or false")
        return cls(int(rate), size, float(every), **flags)

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * CHANNELS * SAMPLE_BYTES


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a two-channel 16-bit PCM WAV; `data_bytes` None: sizes unknown."""
    data = UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff = UNKNOWN_SIZE if data_bytes is None else min(UNKNOWN_SIZE, 36 + data_bytes)
    block = CHANNELS * SAMPLE_BYTES
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, CHANNELS, sample_rate,
                       sample_rate * block, block, 8 * SAMPLE_BYTES, b"data", min(UNKNOWN_SIZE, data))


def wav_sizes(total_bytes: int) -> list[tuple[int, bytes]]:
    """The (offset, bytes) writes that give a recording of `total_bytes` (header included) its true
    sizes: the RIFF chunk's at 4, the data chunk's at 40. A whole number of frames is kept."""
    data = max(0, total_bytes - WAV_HEADER_BYTES)
    data -= data % (CHANNELS * SAMPLE_BYTES)
    return [(4, struct.pack("<I", min(UNKNOWN_SIZE, 36 + data))), (40, struct.pack("<I", min(UNKNOWN_SIZE, data)))]


def recording_seconds(total_bytes: int, sample_rate: int) -> float:
    return max(0, total_bytes - WAV_HEADER_BYTES) / (sample_rate * CHANNELS * SAMPLE_BYTES)
