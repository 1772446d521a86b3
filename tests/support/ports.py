"""A free loopback port for a test's own server, below the kernel's ephemeral range, so tests
running at once on one machine never collide.

A port the kernel hands out (a port-0 bind) is free when asked but lies in the ephemeral range, from
which the kernel also picks every other test's outgoing connection's source port: a server started
seconds later (a dispatcher process importing Pipecat on a busy host) found its number taken
("Address already in use", seen in CI). Below that range only servers given explicit numbers bind,
and each of those is checked free when picked. A server that binds one number for both TCP and UDP
(coturn's `listening-port`) gets a number free for both.

Free when asked is not enough either: a block handed to one test (an edge's RTP ports, bound call by
call later) was free when another test picked a number inside it, which the first test's call then
took (Kamailio: "Address already in use", seen beside other suites). So every number handed out is
also written, for `HANDED_OUT_SECONDS`, in a record all test processes on the machine share
(`HANDED_OUT`, under a lock), and a later pick takes a recorded one only where nothing else is found.
"""

from __future__ import annotations

import fcntl
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_UNPRIVILEGED = 10000  # below: well-known and registered services of the host
# Its own generator: a test that seeds `random` (a model's seed) would give every worker the same numbers.
_PICK = random.SystemRandom()
MIN_NUMBERS_BELOW = 1000  # fewer between LOWEST_UNPRIVILEGED and the ephemeral range: let the kernel pick
HANDED_OUT = Path(tempfile.gettempdir()) / "voicefleet-test-ports"
HANDED_OUT_SECONDS = 300.0  # a test binds what it was handed within seconds; a suite hands out thousands


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A TCP port (`socket.SOCK_DGRAM`: a UDP one) free on 127.0.0.1 when asked, below the ephemeral
    range (the kernel's pick where a host's range leaves too few numbers below it)."""
    high = ephemeral_low()
    if high - LOWEST_UNPRIVILEGED < MIN_NUMBERS_BELOW:
        return _kernel_port(kind)
    with _handed_out() as taken:
        for attempt in range(400):  # the record is a preference: past 200 tries, free when asked will do
            port = _PICK.randrange(LOWEST_UNPRIVILEGED, high)  # noqa: S311 - a port, not a secret
            if (attempt >= 200 or port not in taken) and _free(port, kind):
                taken.add(port)
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
    with _handed_out() as taken:
        for attempt in range(400):  # the record is a preference: past 200 tries, free when asked will do
            first = _PICK.randrange(LOWEST_UNPRIVILEGED, high)  # noqa: S311 - a port, not a secret
            block = range(first, first + span)
            if (attempt >= 200 or not taken.intersection(block)) and all(_free(port, kind) for port in block
                                                     for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
                taken.update(block)
                return first
    raise RuntimeError(f"no {span} free ports below {high + span} on 127.0.0.1")


@contextmanager
def _handed_out() -> Iterator[set[int]]:
    """The numbers handed out on this machine within `HANDED_OUT_SECONDS`, held under the record's lock; what the
    caller adds is written back, with the time it was handed out."""
    with open(HANDED_OUT, "a+", encoding="ascii") as record:
        fcntl.flock(record, fcntl.LOCK_EX)
        record.seek(0)
        now = time.time()
        kept: dict[int, float] = {}
        for line in record.read().split():
            port, _, at = line.partition("@")
            try:
                if now - float(at) < HANDED_OUT_SECONDS:
                    kept[int(port)] = float(at)
            except ValueError:
                continue  # a line a crashed writer cut short
        taken = set(kept)
        yield taken
        kept.update({port: now for port in taken - kept.keys()})
        record.seek(0)
        record.truncate()
        record.write("".join(f"{port}@{at:.0f}\n" for port, at in kept.items()))


def _free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
