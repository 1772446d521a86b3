"""A free loopback port for a test's own server, chosen by the kernel (port 0), so tests running
at once on one machine never collide."""

from __future__ import annotations

import socket


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A TCP port (`socket.SOCK_DGRAM`: a UDP one) free on 127.0.0.1 when asked."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
