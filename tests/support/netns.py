"""Three network namespaces for relay tests: a client and a bot that cannot reach each other,
and a hub between them holding the TURN server (and the dispatcher).

    client ns  198.51.100.2 ── veth ── 198.51.100.1  hub ns  203.0.113.1 ── veth ── 203.0.113.2  bot ns
                                                     lo: 192.0.2.10 (the "public" TURN address)

Every address is a documentation range (TEST-NET-1/2/3), so the TURN server's deny list of
private and metadata ranges stays on, exactly as in production, and nothing here can collide
with a real network. The client's only route is to 192.0.2.10 via the hub, likewise the bot's;
the hub does not forward (`ip_forward=0`), so even a forged route would not carry a packet from
client to bot. Names start with `i10`, carry a random token (several runs at once never share a
namespace or an interface) and are removed on exit, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

TURN_ADDRESS = "192.0.2.10"
CLIENT_ADDRESS, CLIENT_GATEWAY = "198.51.100.2", "198.51.100.1"
BOT_ADDRESS, BOT_GATEWAY = "203.0.113.2", "203.0.113.1"
# Only with `direct_link=True` (the latency bench's baseline): a link from client to bot.
DIRECT_CLIENT_ADDRESS, DIRECT_BOT_ADDRESS = "192.0.2.65", "192.0.2.66"
COMMAND_TIMEOUT = 10.0


class NetnsUnavailable(Exception):
    """This machine cannot create network namespaces (not root, no `ip`): tests skip."""


def unavailable_reason() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class RelayTopology:
    hub: str
    client: str
    bot: str

    @staticmethod
    def exec_prefix(namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def routes(self, namespace: str) -> str:
        return run("ip", "netns", "exec", namespace, "ip", "-4", "route", "show")


@contextlib.contextmanager
def relay_topology(*, direct_link: bool = False) -> Iterator[RelayTopology]:
    """`direct_link` adds a client-bot link (192.0.2.64/30) so a session can also run without the
    relay over the same namespaces; the relay tests never set it."""
    reason = unavailable_reason()
    if reason is not None:
        raise NetnsUnavailable(reason)
    token = secrets.token_hex(3)
    topology = RelayTopology(hub=f"i10-{token}-hub", client=f"i10-{token}-client", bot=f"i10-{token}-bot")
    created: list[str] = []
    try:
        for namespace in (topology.hub, topology.client, topology.bot):
            run("ip", "netns", "add", namespace)
            created.append(namespace)
            _in(namespace, "ip", "link", "set", "lo", "up")
        _in(topology.hub, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        _in(topology.hub, "ip", "addr", "add", f"{TURN_ADDRESS}/32", "dev", "lo")
        _link(topology.hub, topology.client, f"i10{token}c", CLIENT_GATEWAY, CLIENT_ADDRESS)
        _link(topology.hub, topology.bot, f"i10{token}b", BOT_GATEWAY, BOT_ADDRESS)
        if direct_link:
            _link(topology.client, topology.bot, f"i10{token}d", DIRECT_CLIENT_ADDRESS, DIRECT_BOT_ADDRESS, prefix=30)
        yield topology
    finally:
        # Deleting a namespace deletes its veth ends, and with them their peers.
        for namespace in created:
            with contextlib.suppress(Exception):
                run("ip", "netns", "delete", namespace)


def _in(namespace: str, *args: str) -> str:
    return run("ip", "netns", "exec", namespace, *args)


def _link(hub: str, leaf: str, name: str, hub_address: str, leaf_address: str, *, prefix: int = 24) -> None:
    """A veth between hub and leaf; for a /24 (a hub link) the leaf's only route beyond it is
    the TURN address."""
    hub_end, leaf_end = f"{name}0", f"{name}1"  # ≤ 15 characters
    run("ip", "link", "add", hub_end, "netns", hub, "type", "veth", "peer", "name", leaf_end, "netns", leaf)
    _in(hub, "ip", "addr", "add", f"{hub_address}/{prefix}", "dev", hub_end)
    _in(hub, "ip", "link", "set", hub_end, "up")
    _in(leaf, "ip", "addr", "add", f"{leaf_address}/{prefix}", "dev", leaf_end)
    _in(leaf, "ip", "link", "set", leaf_end, "up")
    if prefix == 24:
        _in(leaf, "ip", "route", "add", f"{TURN_ADDRESS}/32", "via", hub_address)


def wait_listening(
    namespace: str,
    endpoint: str,
    *,
    protocols: tuple[str, ...],
    alive: Callable[[], bool],
    describe: Callable[[], str],
    timeout: float = 30.0,
) -> None:
    """Until `endpoint` ("address:port") is bound for each of `protocols` ("udp", "tcp") inside
    the namespace; packets sent after that are queued by the kernel. Raises with `describe()`
    (a log tail) when the process dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        sockets = run("ip", "netns", "exec", namespace, "ss", "-Hlntu")
        bound = {line.split()[0] for line in sockets.splitlines() if endpoint in line}
        if all(protocol in bound for protocol in protocols):
            return
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on {endpoint} ({'/'.join(protocols)}) in {namespace}:\n{describe()}")
        time.sleep(0.05)
