"""The loopback capture's kernel filter (tests/sip/loopback_udp.py `port_filter`): only the received copies of the
watched ports' datagrams reach the reading socket, so a busy host's other loopback traffic costs the test nothing."""

from __future__ import annotations

import socket
import time

import pytest

from tests.sip.loopback_udp import ETH_P_ALL, SO_ATTACH_FILTER, can_capture, port_filter
from tests.support.ports import free_port


def test_only_the_watched_ports_received_datagrams_reach_the_socket() -> None:
    if (why := can_capture()) is not None:
        pytest.skip(why)
    watched, other = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    kept = port_filter({watched})
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL)) as raw, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        raw.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, kept.program)
        raw.bind(("lo", 0))
        raw.settimeout(0.5)
        receiver.bind(("127.0.0.1", watched))
        for _ in range(20):
            sender.sendto(b"elsewhere", ("127.0.0.1", other))
        sender.sendto(b"to", ("127.0.0.1", watched))
        receiver.sendto(b"from", sender.getsockname())
        read: list[bytes] = []
        deadline = time.monotonic() + 2.0  # unfiltered, a busy host's lo never goes quiet
        while time.monotonic() < deadline:
            try:
                frame, _ = raw.recvfrom(65535)
            except TimeoutError:
                break
            header = 14 + (frame[14] & 0x0F) * 4 + 8  # lo's Ethernet header, the IPv4 header, the UDP header
            read.append(frame[header:])
    assert sorted(read) == [b"from", b"to"]  # once each (lo's outgoing copies dropped), nothing else of lo's
