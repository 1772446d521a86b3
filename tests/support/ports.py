"""A free loopback port for a test's own server, chosen by the kernel (port 0), so tests running
at once on one machine never collide.

A server that binds one number for both TCP and UDP (coturn's `listening-port`) gets a port below
the kernel's ephemeral range instead: the kernel hands out ephemeral ports to every other test's
port-0 bind and outgoing connection, so a number free for UDP could be taken for TCP a moment later
(and coturn, failing its TCP bind, retries forever without ever answering on UDP).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_UNPRIVILEGED = 10000  # below: well-known and registered services of the host


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A TCP port (`socket.SOCK_DGRAM`: a UDP one) free on 127.0.0.1 when asked."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ephemeral_low() -> int:
    """The kernel's lowest ephemeral port (32768 where the file cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_pair(span: int = 1) -> int:
    """A port below the ephemeral range whose `span` numbers from it are free on 127.0.0.1 for
    both TCP and UDP when asked; only servers given explicit numbers could take them."""
    high = ephemeral_low() - span
    for _ in range(200):
        first = random.randrange(LOWEST_UNPRIVILEGED, high)  # noqa: S311 - a port, not a secret
        if all(_free(first + offset, kind) for offset in range(span)
               for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            return first
    raise RuntimeError(f"no {span} free ports below {high + span} on 127.0.0.1")


def _free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
