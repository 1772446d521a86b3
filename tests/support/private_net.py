"""One private network namespace with a non-loopback address, for browser WebRTC tests.

Chromium's WebRTC never gathers loopback candidates, so a browser and a bot on one host need an
address that is not 127.0.0.1. Inside a fresh namespace a veth pair holds 198.51.100.10/24
(TEST-NET-2, documentation only): it exists nowhere else, collides with nothing, and packets to
it never leave the namespace. Names carry the caller's prefix and a random token, so parallel
runs never share one; everything is removed on exit, processes left inside included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.netns import run as _run
from tests.support.netns import unavailable_reason

__all__ = ["ADDRESS", "PrivateNet", "private_net", "unavailable_reason"]

ADDRESS = "198.51.100.10"


@dataclass(frozen=True)
class PrivateNet:
    name: str
    address: str = ADDRESS

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


@contextlib.contextmanager
def private_net(prefix: str) -> Iterator[PrivateNet]:
    token = secrets.token_hex(3)
    net = PrivateNet(name=f"{prefix}-{token}")
    inside = [*net.exec_prefix]
    _run("ip", "netns", "add", net.name)
    try:
        _run(*inside, "ip", "link", "set", "lo", "up")
        near, far = f"{prefix}{token}a", f"{prefix}{token}b"  # ≤ 15 characters, the kernel's limit
        _run(*inside, "ip", "link", "add", near, "type", "veth", "peer", "name", far)
        _run(*inside, "ip", "addr", "add", f"{net.address}/24", "dev", near)
        _run(*inside, "ip", "link", "set", near, "up")
        _run(*inside, "ip", "link", "set", far, "up")
        yield net
    finally:
        with contextlib.suppress(Exception):
            for pid in _run("ip", "netns", "pids", net.name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)  # only what this namespace holds: ours
        _run("ip", "netns", "del", net.name)
