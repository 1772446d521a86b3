"""The consent announcement (`RECORDING_ANNOUNCEMENT`): a WAV file in the team's project or image,
played to the caller before a session whose policy is `consent` is recorded.

Any WAV of 16-bit PCM that parses: mono is played as it is, more channels are mixed to mono, and
its rate is the output transport's business (Pipecat resamples what it plays). Unset: the short
one voicefleet ships beside this module (`announcement.wav`, spoken by espeak-ng: "This call is
recorded and transcribed."). A file that is not such audio is an error of `python -m bot --check`
and of a local dispatcher's start; at a call, it is reported and the call runs unrecorded.
"""

from __future__ import annotations

import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicefleet_settings.read import setting_text

VARIABLE = "RECORDING_ANNOUNCEMENT"
DEFAULT = Path(__file__).with_name("announcement.wav")
MAX_SECONDS = 30.0  # a consent notice, not a hold message: longer is a mistake
FRAME_SECONDS = 0.02


class AnnouncementError(ValueError):
    """The announcement cannot be played; the message names the file and the way forward."""


@dataclass(frozen=True)
class Announcement:
    pcm: bytes  # mono 16-bit little-endian
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.sample_rate)

    def frames(self) -> list[bytes]:
        """The audio cut in 20 ms pieces, as a transport plays it."""
        step = 2 * max(1, int(self.sample_rate * FRAME_SECONDS))
        return [self.pcm[i:i + step] for i in range(0, len(self.pcm), step)]


def announcement_path(env: Mapping[str, str], project: Path | None = None) -> Path:
    """The configured file (relative paths from the project's folder), or the one voicefleet ships."""
    value = setting_text(env, VARIABLE)
    if not value:
        return DEFAULT
    path = Path(value)
    return path if path.is_absolute() or project is None else project / path


def load_announcement(path: Path) -> Announcement:
    fix = f"set {VARIABLE} to a WAV file of 16-bit PCM (e.g. `sox in.mp3 -b 16 out.wav`), or unset it for " \
          "voicefleet's own"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AnnouncementError(f"{VARIABLE}: {path} does not exist: {fix}") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise AnnouncementError(f"{VARIABLE}: {path} is not a WAV file ({exc}): {fix}") from None
    if width != 2 or rate <= 0 or channels <= 0:
        raise AnnouncementError(f"{VARIABLE}: {path} is {8 * width}-bit audio: {fix}")
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    announcement = Announcement(samples.tobytes(), rate)
    if not 0 < announcement.seconds <= MAX_SECONDS:
        raise AnnouncementError(f"{VARIABLE}: {path} lasts {announcement.seconds:.1f}s: an announcement has audio "
                                f"and lasts at most {MAX_SECONDS:g}s")
    return announcement


def announcement_problem(env: Mapping[str, str], project: Path | None = None) -> str | None:
    """The one-line error of the configured announcement, or None when it plays."""
    try:
        load_announcement(announcement_path(env, project))
    except AnnouncementError as exc:
        return str(exc)
    return None
