"""`python -m sipedge.node_fence`: run as the edge's user on its node's network before the edge starts, it
exits non-zero if any of the node's credential or control endpoints answers, so an edge whose node lacks
the nftables table in docs/sip.md#on-kubernetes never starts (fail closed, instead of advice alone).

A refused or unanswered connection passes: the table rejects, and an endpoint another cloud lacks does
not answer. Each try is bounded, so a node without the rule fails within a few seconds at most.
`--admitted udp:5061-5063 --admitted tcp:5081-5083` (a pod whose front runs): those loopback ports must be
reached, as the table's front lines admit them (sipedge/fence_loopback.py), or the fence fails too."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

from sipedge.fence_loopback import parse_admitted, unreached

TIMEOUT_SECONDS = 1.0
# What a process on the node's network could take the node's credentials or control from: the cloud's
# metadata service (IPv4 and AWS's IPv6 one), Azure's wireserver, and the node's loopback daemons (the
# kubelet's healthz, kube-proxy's metrics, EKS's VPC CNI gRPC and introspection).
ENDPOINTS: tuple[tuple[str, int], ...] = (
    ("169.254.169.254", 80), ("fd00:ec2::254", 80), ("168.63.129.16", 80),
    ("127.0.0.1", 10248), ("127.0.0.1", 10249), ("127.0.0.1", 50051), ("127.0.0.1", 61679), ("::1", 10248))
GUIDE = "docs/sip.md#on-kubernetes"


def answers(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` (refused, unreachable or silent: no)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, unreachable, no such address family on this node, or timed out
        return False


def answering(endpoints: Sequence[tuple[str, int]], timeout: float = TIMEOUT_SECONDS) -> list[str]:
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for host, port in endpoints if answers(host, port, timeout)]


def parse(arguments: Sequence[str]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """`HOST:PORT` or `[V6]:PORT` each (none: ENDPOINTS), and `--admitted PROTO:PORT[-PORT]`'s loopback ports."""
    found, admitted, rest = [], [], list(arguments)
    while rest:
        argument = rest.pop(0)
        if argument == "--admitted":
            if not rest:
                raise SystemExit("sipedge.node_fence: --admitted needs udp:PORT[-PORT] or tcp:PORT[-PORT]")
            admitted += parse_admitted(rest.pop(0))
            continue
        host, separator, port = argument.rpartition(":")
        if not separator or not port.isdigit():
            raise SystemExit(f"sipedge.node_fence: {argument!r} is not HOST:PORT (an IPv6 host in brackets)")
        found.append((host.strip("[]"), int(port)))
    return found or list(ENDPOINTS), admitted


def main(arguments: Sequence[str]) -> int:
    fenced, admitted = parse(arguments)
    open_ = answering(fenced)
    if open_:
        print(f"sipedge: this node answers the edge's user (uid {os.getuid()}) at {', '.join(open_)}: the node's cloud "
              f"credentials or its daemons are in reach of a process that parses internet SIP. Load the nftables "
              f"table in {GUIDE} on the edge's nodes, then delete this pod so it starts again.", file=sys.stderr)
        return 1
    shut = unreached(admitted, TIMEOUT_SECONDS)
    if shut:
        print(f"sipedge: this node refuses the edge's user (uid {os.getuid()}) its own workers' loopback ports "
              f"{', '.join(shut)}: Kamailio could not reach its workers, nor the edge their control APIs. Load the "
              f"nftables table in {GUIDE} (its front lines admit these before it refuses the rest of loopback) on "
              "the edge's nodes, then delete this pod so it starts again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
