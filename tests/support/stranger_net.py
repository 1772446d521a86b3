"""A stranger on the far side of a link: a network namespace joined to this host by one veth pair, so a
process inside it sends from an address that is neither loopback nor this host's own.

    this host  HOST_ADDRESS (veth end) ── veth ── STRANGER_ADDRESS  stranger ns

A server that binds HOST_ADDRESS is reached from this host (any local source, 127.0.0.1 included) and
from the stranger alike, and tells them apart by source: what a firewall or a source allow-list sees
from the internet. The /30 is in TEST-NET-2 (documentation only), chosen at random among its 64 so
runs at once rarely meet; the namespace (and with it both veth ends) is removed on exit.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.netns import run, unavailable_reason

__all__ = ["StrangerNet", "stranger_net", "unavailable_reason"]


@dataclass(frozen=True)
class StrangerNet:
    name: str
    host_address: str  # this host's end of the link
    address: str  # the stranger's own

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


@contextlib.contextmanager
def stranger_net(prefix: str) -> Iterator[StrangerNet]:
    """`prefix`: a few letters naming the caller (the interface's name holds 15 characters at most)."""
    token = secrets.token_hex(3)
    base = 4 * secrets.randbelow(64)  # one /30 of 198.51.100.0/24: .base+1 here, .base+2 there
    net = StrangerNet(f"{prefix}-{token}", f"198.51.100.{base + 1}", f"198.51.100.{base + 2}")
    near, far = f"{prefix}{token}h", f"{prefix}{token}s"
    run("ip", "netns", "add", net.name)
    try:
        run("ip", "link", "add", near, "type", "veth", "peer", "name", far, "netns", net.name)
        run("ip", "addr", "add", f"{net.host_address}/30", "dev", near)
        run("ip", "link", "set", near, "up")
        run(*net.exec_prefix, "ip", "addr", "add", f"{net.address}/30", "dev", far)
        run(*net.exec_prefix, "ip", "link", "set", far, "up")
        yield net
    finally:
        with contextlib.suppress(Exception):
            run("ip", "link", "del", near)  # its peer, in the namespace, goes with it
        run("ip", "netns", "del", net.name)
