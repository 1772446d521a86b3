"""Which of the workers' SIP ports are bound, as the kernel lists its UDP sockets (proc(5): /proc/net/udp, the
reader's network namespace's): a front run apart from its workers (sipedge/edge_part.py) stays up while any
worker does, to carry their calls' last requests, and learns it without touching their ports."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sipedge.config import EdgeConfig
from sipedge.worker_place import WORKER_HOST

UDP_TABLE = Path("/proc/net/udp")


def bound_worker_ports(config: EdgeConfig, table: Path = UDP_TABLE) -> set[int]:
    """The workers' SIP ports on WORKER_HOST that a socket holds now."""
    wanted = set(range(config.worker_sip_port, config.worker_sip_port + config.workers))
    host = ipaddress.IPv4Address(WORKER_HOST)
    found = set()
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 2:
            continue
        address, _, port = fields[1].partition(":")
        # The kernel writes the address as its 32 bits in host order (little-endian on x86_64 and arm64).
        if ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(address), "little")) == host \
                and int(port, 16) in wanted:
            found.add(int(port, 16))
    return found
