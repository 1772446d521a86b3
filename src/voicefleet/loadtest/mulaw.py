"""G.711 μ-law, the audio a phone line carries (8 kHz, one byte a sample), in numpy: the standard
library's `audioop` is gone from Python 3.13."""

from __future__ import annotations

import numpy as np

BIAS = 0x84
BIAS_14 = BIAS >> 2
CLIP_14 = 8159
SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = (((codes & 0x0F) << 3) + BIAS) << exponent
    return np.where(codes & 0x80, BIAS - magnitude, magnitude - BIAS).astype(np.int16)


DECODE = _decode_table()


def decode(data: bytes) -> np.ndarray:
    """μ-law bytes as int16 samples."""
    return DECODE[np.frombuffer(data, dtype=np.uint8)]


def encode(samples: np.ndarray) -> bytes:
    """int16 samples as μ-law bytes, the same bytes as the reference coder (ITU-T G.191's, which
    `audioop` was): 14-bit magnitude, biased, its segment and four bits of mantissa, inverted."""
    pcm = samples.astype(np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), CLIP_14) + BIAS_14
    segment = np.searchsorted(SEGMENT_ENDS, magnitude)
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()

