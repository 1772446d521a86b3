"""What the edge sends a SIPp caller, read off the loopback interface. PJSIP sends a call's RTP to
the address its packets come from (symmetric RTP, for callers behind NAT), which is SIPp's own
media socket, so no socket of the test's can receive it: a packet socket on `lo` sees it instead
(tests/sip/loopback_udp.py, which needs CAP_NET_RAW; without it the test that listens skips with
that reason)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable

from tests.sip.loopback_udp import Datagram, LoopbackUdp, can_capture

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["LoopbackRtp", "can_capture", "decode", "rtp_payload", "rtp_sequence"]

RTP_HEADER = 12


def rtp_sequence(packet: bytes) -> int:
    return int.from_bytes(packet[2:4], "big")


def rtp_payload(packet: bytes) -> bytes:
    return packet[RTP_HEADER + 4 * (packet[0] & 0x0F) :]


def decode(payload: bytes, law: str) -> bytes:
    """G.711 `law` ("ulaw" or "alaw") as 16-bit PCM."""
    return audioop.ulaw2lin(payload, 2) if law == "ulaw" else audioop.alaw2lin(payload, 2)


class LoopbackRtp:
    """Collects the RTP payloads sent to UDP port `port` on lo, in sequence order, until stopped."""

    def __init__(self, port: int, others: Iterable[int] = ()) -> None:
        """`others`: more ports the same capture reads, for `senders` (one capture for several calls)."""
        self.port = port
        self._capture = LoopbackUdp({port, *others})

    def senders(self) -> set[int]:
        """The capture's ports that have sent a datagram so far."""
        return {d.source_port for d in list(self._capture.datagrams) if d.source_port in self._capture.ports}

    def _packets(self) -> list[Datagram]:
        return [d for d in list(self._capture.datagrams)
                if d.destination_port == self.port and len(d.payload) >= RTP_HEADER]

    def stop(self) -> None:
        self._capture.stop()

    def pcm(self, law: str) -> bytes:
        """The payloads as 16-bit PCM at 8 kHz (G.711 `law`, "ulaw" or "alaw", decoded), in sequence order."""
        return decode(b"".join(rtp_payload(packet) for packet in self._ordered()), law)

    def payload_types(self) -> list[int]:
        """Each packet's payload type (0 μ-law, 8 A-law), in sequence order."""
        return [packet[1] & 0x7F for packet in self._ordered()]

    def pcm_as_sent(self) -> bytes:
        """The payloads as 16-bit PCM at 8 kHz, each decoded by its own payload type (a call whose
        codec changed midway)."""
        laws = {0: "ulaw", 8: "alaw"}
        return b"".join(decode(rtp_payload(packet), laws[packet[1] & 0x7F]) for packet in self._ordered()
                        if packet[1] & 0x7F in laws)

    def _ordered(self) -> list[bytes]:
        """The RTP packets, one per sequence number, in sequence order. A call's sequence numbers start
        at random and may wrap: the order counts from the first packet seen."""
        seen = self._packets()
        packets = {rtp_sequence(d.payload): d.payload for d in seen}
        if not packets:
            return []
        first = rtp_sequence(seen[0].payload)
        return [packets[seq] for seq in sorted(packets, key=lambda seq: (seq - first) % 65536)]

    def wait_quiet(self, seconds: float = 1.0, timeout: float = 30.0) -> None:
        """Until no packet has come for `seconds` (the call's media ended), within `timeout`."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline and seen != len(self._capture.datagrams):
            seen = len(self._capture.datagrams)
            time.sleep(seconds)
