"""UDP datagrams on the loopback interface, each stamped by the kernel as it crossed `lo`. What the
edge and a SIP caller send each other (SIP, RTP) goes to sockets no test owns, so a packet socket
reads it instead. That needs CAP_NET_RAW (root, as the relay tests' network namespaces do); a
caller of `can_capture` skips with its reason without it. The kernel's time, not the reading
thread's, so that a busy host delays the reading without moving the stamps."""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: as sent and as received; the received copy is kept
ETHERNET, IPV4_MIN, UDP = 14, 20, 8
# Linux's SO_TIMESTAMPNS (its control message's number too) and SO_RCVBUFFORCE, which Python's socket lacks.
SO_TIMESTAMPNS, SO_RCVBUFFORCE = 35, 33
TIMESPEC = struct.Struct("@qq")
RECEIVE_BUFFER = 8 << 20  # seconds of a busy loopback, so that a stalled reader drops nothing


def can_capture() -> str | None:
    """None when a packet socket can be opened here, else why not."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL)).close()
    except (PermissionError, OSError) as exc:
        return f"reading packets off loopback needs CAP_NET_RAW (uid {os.getuid()}): {exc}"
    return None


@dataclass(frozen=True)
class Datagram:
    at: float  # when it crossed lo, epoch seconds (the kernel's clock)
    source_port: int
    destination_port: int
    payload: bytes


class LoopbackUdp:
    """Collects the IPv4 UDP datagrams from or to any of `ports` on lo, in the order they came, until stopped."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = frozenset(ports)
        self.datagrams: list[Datagram] = []  # appended by the reading thread only
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        try:  # past net.core.rmem_max, which needs CAP_NET_ADMIN
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, ancillary, _, address = self._sock.recvmsg(65535, socket.CMSG_SPACE(TIMESPEC.size))
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING or len(frame) < ETHERNET + IPV4_MIN + UDP:
                continue
            ip = frame[ETHERNET:]
            if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
                continue
            udp = ip[(ip[0] & 0x0F) * 4 :]
            source, destination = int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")
            if source not in self.ports and destination not in self.ports:
                continue
            self.datagrams.append(Datagram(_stamp(ancillary), source, destination, bytes(udp[UDP:])))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack(data[: TIMESPEC.size])
            return float(seconds + nanoseconds / 1e9)
    raise RuntimeError("the kernel gave no receive time (SO_TIMESTAMPNS)")
