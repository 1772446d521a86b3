"""A free loopback port for a test's own server, below the kernel's ephemeral range, so tests
running at once on one machine never collide.

A port the kernel hands out (a port-0 bind) is free when asked but lies in the ephemeral range, from
which the kernel also picks every other test's outgoing connection's source port: a server started
seconds later (a dispatcher process importing Pipecat on a busy host) found its number taken
("Address already in use", seen in CI). Below that range only servers given explicit numbers bind,
and each of those is checked free when picked. A server that binds one number for both TCP and UDP
(coturn's `listening-port`) gets a number free for both.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_UNPRIVILEGED = 10000  # below: well-known and registered services of the host
# Its own generator: a test that seeds `random` (a model's seed) would give every worker the same numbers.
_PICK = random.SystemRandom()
MIN_NUMBERS_BELOW = 1000  # fewer between LOWEST_UNPRIVILEGED and the ephemeral range: let the kernel pick


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A TCP port (`socket.SOCK_DGRAM`: a UDP one) free on 127.0.0.1 when asked, below the ephemeral
    range (the kernel's pick where a host's range leaves too few numbers below it)."""
    high = ephemeral_low()
    if high - LOWEST_UNPRIVILEGED < MIN_NUMBERS_BELOW:
        return _kernel_port(kind)
    for _ in range(200):
        port = _PICK.randrange(LOWEST_UNPRIVILEGED, high)  # noqa: S311 - a port, not a secret
        if _free(port, kind):
            return port
    return _kernel_port(kind)


def _kernel_port(kind: socket.SocketKind) -> int:
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
        first = _PICK.randrange(LOWEST_UNPRIVILEGED, high)  # noqa: S311 - a port, not a secret
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
