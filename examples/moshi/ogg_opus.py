"""Ogg/Opus both ways for Moshi's protocol: 16-bit mono PCM at 24 kHz in, Ogg pages out, and back.

Both directions use PyAV (FFmpeg's libopus and Ogg muxer), which the bot already has through
Pipecat's WebRTC transport (aiortc). The writer flushes a page per Opus packet, so each 20 ms of the
caller's audio leaves at once; the reader takes the server's pages as they come (whole pages, a
packet possibly spanning two) and decodes each packet on its own.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np

RATE = 24000  # Mimi's rate: the only one Moshi's protocol carries
_PAGE_MICROSECONDS = "20000"  # a page per 20 ms Opus packet: the caller's audio is never held back
_HEADER = 27  # an Ogg page's fixed header; its segment table follows


class OggError(ValueError):
    """Bytes that are not an Ogg stream of Opus audio."""


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.written = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.written += bytes(data)
        return len(data)


class OggOpusWriter:
    """The caller's PCM as an Ogg stream of Opus: `write` returns the pages completed by its audio
    (the stream's two header pages come with the first audio page)."""

    def __init__(self) -> None:
        self._sink = _Sink()
        self._container = av.open(self._sink, "w", format="ogg", options={"page_duration": _PAGE_MICROSECONDS},
                                  container_options={"flush_packets": "1"})
        self._stream: Any = self._container.add_stream("libopus", rate=RATE)
        self._stream.layout = "mono"
        self._samples = 0

    def write(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, self._samples
        self._samples += len(samples)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        pages, self._sink.written = bytes(self._sink.written), bytearray()
        return pages

    def close(self) -> None:
        self._container.close()


class OggOpusReader:
    """The server's Ogg pages as PCM: `read` takes one message's pages and returns their audio.
    Raises OggError on bytes that are not Ogg pages of Opus."""

    def __init__(self) -> None:
        self._decoder: Any = av.CodecContext.create("libopus", "r")
        self._decoder.sample_rate, self._decoder.layout = RATE, "mono"
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._partial = b""  # a packet continued on the next page
        self._headers_seen = 0

    def read(self, data: bytes) -> bytes:
        pcm = []
        for packet in self._packets(data):
            if self._headers_seen < 2:  # OpusHead, then OpusTags: the stream's identity, no audio
                if packet[:8] not in (b"OpusHead", b"OpusTags"):
                    raise OggError(f"the Ogg stream is not Opus: its header packet starts {packet[:8]!r}")
                self._headers_seen += 1
                continue
            try:
                frames = self._decoder.decode(av.Packet(packet))
            except av.error.FFmpegError as e:
                raise OggError(f"an Opus packet does not decode: {e}") from e
            for frame in frames:
                pcm += [f.to_ndarray().tobytes() for f in self._resampler.resample(frame)]
        return b"".join(pcm)

    def _packets(self, data: bytes) -> list[bytes]:
        packets, at = [], 0
        while at < len(data):
            if data[at:at + 4] != b"OggS" or len(data) < at + _HEADER:
                raise OggError(f"no Ogg page at byte {at} of {len(data)}")
            lacing = data[at + _HEADER:at + _HEADER + data[at + 26]]
            body = at + _HEADER + len(lacing)
            if len(lacing) != data[at + 26] or body + sum(lacing) > len(data):
                raise OggError(f"the Ogg page at byte {at} is cut short")
            for size in lacing:
                self._partial += data[body:body + size]
                body += size
                if size < 255:  # a lacing value under 255 ends its packet
                    packets.append(self._partial)
                    self._partial = b""
            at = body
        return packets
