"""A trunk whose network delays each RTP packet by a random 0-`jitter` ms, in order (queueing: a packet
never overtakes the one before), as a mobile or Wi-Fi caller's path does. Its audio is random G.711
noise with no silent sample, so each 10 ms of it is unique and any zero sample in what the edge heard
is silence PJSIP put there."""

from __future__ import annotations

import random
import socket
import struct
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PACKET_MS = 20
SAMPLES = PACKET_MS * 8  # G.711 at 8 kHz: a byte a sample
PIECE_BYTES = 160  # 10 ms of 16-bit PCM: what PJSIP's jitter buffer keeps or drops
_ULAW_ZEROS = (0x7F, 0xFF)
_LOUD = bytes(value for value in range(256) if value not in _ULAW_ZEROS)


def speech(seconds: float, rng: random.Random) -> list[bytes]:
    """μ-law packets of `PACKET_MS` each, none with a sample that decodes to 0."""
    return [bytes(rng.choice(_LOUD) for _ in range(SAMPLES)) for _ in range(int(seconds * 1000 / PACKET_MS))]


def in_order_jitter(count: int, jitter_ms: float, rng: random.Random) -> list[float]:
    """When each of `count` packets leaves the network, in seconds from the first's due time."""
    times: list[float] = []
    for index in range(count):
        due = index * PACKET_MS / 1000 + rng.uniform(0, jitter_ms / 1000)
        times.append(max(times[-1] if times else 0.0, due))
    return times


def send(packets: list[bytes], times: list[float], to: tuple[str, int], sock: socket.socket) -> None:
    """Each packet (PCMU, payload type 0) to `to` at its time; what the edge sends back is read and dropped."""
    start = time.monotonic()
    for sequence, (payload, at) in enumerate(zip(packets, times, strict=True)):
        while (wait := start + at - time.monotonic()) > 0:
            time.sleep(min(wait, 0.002))
        header = struct.pack("!BBHII", 0x80, 0, sequence, sequence * SAMPLES, 0x5EED)
        sock.sendto(header + payload, to)
        try:
            while True:
                sock.recv(2048)
        except BlockingIOError:
            pass


def pieces(packets: list[bytes]) -> list[bytes]:
    """The packets' audio as 16-bit PCM, in 10 ms pieces."""
    pcm = b"".join(audioop.ulaw2lin(packet, 2) for packet in packets)
    return [pcm[at:at + PIECE_BYTES] for at in range(0, len(pcm), PIECE_BYTES)]
