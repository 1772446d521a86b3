"""What the edge sends a SIPp caller, read off the loopback interface. PJSIP sends a call's RTP to
the address its packets come from (symmetric RTP, for callers behind NAT), which is SIPp's own
media socket, so no socket of the test's can receive it: a packet socket on `lo` sees it instead.
That needs CAP_NET_RAW (root, as the relay tests' network namespaces do); without it the test
that listens skips with that reason."""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: as sent and as received; the received copy is kept
ETHERNET, IPV4_MIN, UDP = 14, 20, 8
RTP_HEADER = 12


def can_capture() -> str | None:
    """None when a packet socket can be opened here, else why not."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL)).close()
    except (PermissionError, OSError) as exc:
        return f"reading RTP off loopback needs CAP_NET_RAW (uid {os.getuid()}): {exc}"
    return None


class LoopbackRtp:
    """Collects the RTP payloads sent to UDP port `port` on lo, in sequence order, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._packets: dict[int, bytes] = {}
        self._types: dict[int, int] = {}  # each packet's payload type: 0 μ-law, 8 A-law
        self._first: int | None = None  # the first sequence number seen: the order counts from it
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING or len(frame) < ETHERNET + IPV4_MIN + UDP + RTP_HEADER:
                continue
            ip = frame[ETHERNET:]
            if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
                continue
            udp = ip[(ip[0] & 0x0F) * 4 :]
            if int.from_bytes(udp[2:4], "big") != self.port:
                continue
            rtp = udp[UDP:]
            header = RTP_HEADER + 4 * (rtp[0] & 0x0F)
            sequence = int.from_bytes(rtp[2:4], "big")
            self._first = sequence if self._first is None else self._first
            self._packets[sequence] = rtp[header:]
            self._types[sequence] = rtp[1] & 0x7F

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def pcm(self, law: str) -> bytes:
        """The payloads as 16-bit PCM at 8 kHz (G.711 `law`, "ulaw" or "alaw", decoded), in sequence order. A call's
        sequence numbers start at random and may wrap: the order counts from the first packet seen."""
        payload = b"".join(self._packets[seq] for seq in self._ordered())
        return audioop.ulaw2lin(payload, 2) if law == "ulaw" else audioop.alaw2lin(payload, 2)

    def payload_types(self) -> list[int]:
        """Each packet's payload type, in sequence order."""
        return [self._types[seq] for seq in self._ordered()]

    def pcm_as_sent(self) -> bytes:
        """The payloads as 16-bit PCM at 8 kHz, each decoded by its own payload type (a call whose
        codec changed midway)."""
        decode = {0: audioop.ulaw2lin, 8: audioop.alaw2lin}
        return b"".join(decode[self._types[seq]](self._packets[seq], 2) for seq in self._ordered()
                        if self._types[seq] in decode)

    def _ordered(self) -> list[int]:
        if self._first is None:
            return []
        first = self._first
        return sorted(self._packets, key=lambda seq: (seq - first) % 65536)

    def wait_quiet(self, seconds: float = 1.0, timeout: float = 30.0) -> None:
        """Until no packet has come for `seconds` (the call's media ended), within `timeout`."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline and seen != len(self._packets):
            seen = len(self._packets)
            time.sleep(seconds)
