"""The node fence's other half (sipedge/node_fence.py): on a pod whose front runs, the edge's user must reach
its own workers' loopback ports (Kamailio's UDP to their SIP ports, the edge's TCP to their control APIs), which
the table in docs/sip.md#on-kubernetes admits before refusing the rest of loopback. A node still on a table that
refuses all of loopback would run a pod answering every call 503: the fence tries each port with a listener of
its own (the edge has not started, so they are free) and names those it cannot reach."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"
PROBE = b"sipedge-fence"


def tcp_reached(port: int, timeout: float) -> bool:
    """Whether a TCP connection from here reaches a listener of this process's own on LOOPBACK:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        try:
            listener.bind((LOOPBACK, port))
            listener.listen(1)
            with socket.create_connection((LOOPBACK, port), timeout=timeout):
                return True
        except OSError:  # refused (the table's reject), the port taken, or timed out
            return False


def udp_reached(port: int, timeout: float) -> bool:
    """Whether a datagram from here reaches a socket of this process's own on LOOPBACK:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        try:
            receiver.bind((LOOPBACK, port))
            receiver.settimeout(timeout)
            sender.sendto(PROBE, (LOOPBACK, port))
            with contextlib.suppress(TimeoutError):
                return receiver.recv(len(PROBE)) == PROBE
            return False
        except OSError:  # the table's reject (EPERM or refused), or the port taken
            return False


def unreached(ports: Sequence[tuple[str, int]], timeout: float) -> list[str]:
    """Of `ports` (("udp" or "tcp", port) each), those this process cannot reach on loopback, as `PROTO PORT`."""
    reach = {"udp": udp_reached, "tcp": tcp_reached}
    return [f"{protocol.upper()} {LOOPBACK}:{port}" for protocol, port in ports
            if not reach[protocol](port, timeout)]


def parse_admitted(argument: str) -> list[tuple[str, int]]:
    """`udp:5061-5063` or `tcp:5081` (a port or a range) as (protocol, port) pairs."""
    protocol, _, ports = argument.partition(":")
    low, _, high = ports.partition("-")
    if protocol not in ("udp", "tcp") or not low.isdigit() or not (high or low).isdigit():
        raise SystemExit(f"sipedge.node_fence: --admitted {argument!r} is not udp:PORT[-PORT] or tcp:PORT[-PORT]")
    return [(protocol, port) for port in range(int(low), int(high or low) + 1)]
