"""UDP datagrams on the loopback interface, each stamped by the kernel as it crossed `lo`. What the
edge and a SIP caller send each other (SIP, RTP) goes to sockets no test owns, so a packet socket
reads it instead. That needs CAP_NET_RAW (root, as the relay tests' network namespaces do); a
caller of `can_capture` skips with its reason without it. The kernel's time, not the reading
thread's, so that a busy host delays the reading without moving the stamps."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: as sent and as received; the received copy is kept
ETHERNET, IPV4_MIN, UDP = 14, 20, 8
# Linux's SO_TIMESTAMPNS (its control message's number too) and SO_RCVBUFFORCE, which Python's socket lacks.
SO_TIMESTAMPNS, SO_RCVBUFFORCE = 35, 33
TIMESPEC = struct.Struct("@qq")
RECEIVE_BUFFER = 8 << 20  # seconds of a busy loopback, so that a stalled reader drops nothing
# The kernel's classic BPF (linux/filter.h): the packets of `ports` alone reach the reading thread. A busy host's
# lo carries every other test's traffic too, which the thread would otherwise read and drop in Python.
SO_ATTACH_FILTER = 26
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: the packet's type, as the socket's address has it
LD_B, LD_H, LDX_MSH, LD_H_IND, JEQ, RET = 0x30, 0x28, 0xB1, 0x48, 0x15, 0x06


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
        self._filter = port_filter(self.ports)  # kept: the kernel copies it, but only once attached
        self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, self._filter.program)
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


@dataclass(frozen=True)
class PortFilter:
    """A classic BPF program (its `struct sock_fprog`: `program`) and the instructions it points at."""
    instructions: ctypes.Array[ctypes.c_char]
    program: bytes


def port_filter(ports: Iterable[int]) -> PortFilter:
    """Received (not outgoing) IPv4 UDP packets from or to any of `ports`, as lo's link layer frames them
    (a 14-byte Ethernet header); the reading thread checks each again."""
    listed = sorted(ports)
    count = len(listed)
    drop, accept = 9 + 2 * count, 10 + 2 * count  # the two returns' indexes
    code: list[tuple[int, int, int, int]] = [
        (LD_B, 0, 0, SKF_AD_PKTTYPE), (JEQ, drop - 2, 0, PACKET_OUTGOING),
        (LD_H, 0, 0, 12), (JEQ, 0, drop - 4, 0x0800),  # IPv4
        (LD_B, 0, 0, ETHERNET + 9), (JEQ, 0, drop - 6, socket.IPPROTO_UDP),
        (LDX_MSH, 0, 0, ETHERNET), (LD_H_IND, 0, 0, ETHERNET)]  # X: the IP header's length; A: the source port
    code += [(JEQ, accept - (8 + i) - 1, 0, port) for i, port in enumerate(listed)]
    code.append((LD_H_IND, 0, 0, ETHERNET + 2))  # the destination port
    code += [(JEQ, accept - (9 + count + i) - 1, 0, port) for i, port in enumerate(listed)]
    code += [(RET, 0, 0, 0), (RET, 0, 0, 0x40000)]
    instructions = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *step) for step in code))
    return PortFilter(instructions, struct.pack("HL", len(code), ctypes.addressof(instructions)))


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack(data[: TIMESPEC.size])
            return float(seconds + nanoseconds / 1e9)
    raise RuntimeError("the kernel gave no receive time (SO_TIMESTAMPNS)")
