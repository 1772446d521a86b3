"""Debian's coturn, started by a test inside a network namespace with a generated configuration.

The configuration is the production hardening (dispatcher/media/turn.py's deny list, no multicast
peers, TURN REST auth with a shared secret, quotas) with test ports and paths. The secret sits
in a 0600 file in the test's own directory, never on a command line. coturn runs in its own
namespace, so fixed ports (3478, the relay range) cannot collide with anything else.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dispatcher.media.turn import DENIED_PEER_RANGES
from tests.support.netns import wait_listening
from tests.support.processes import terminate

TURN_PORT = 3478
REALM = "voicefleet.test"
START_TIMEOUT = 15.0


def coturn_unavailable_reason() -> str | None:
    return None if shutil.which("turnserver") else "coturn (`turnserver`) is not installed (apt-get install coturn)"


def coturn_config(
    *, address: str, secret: str, workdir: Path, allowed_peers: Sequence[str] = (), user_quota: int = 8
) -> str:
    lines = [
        f"listening-ip={address}",
        f"relay-ip={address}",
        f"listening-port={TURN_PORT}",
        "min-port=49152",
        "max-port=49407",
        f"realm={REALM}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        "fingerprint",
        "no-multicast-peers",
        f"user-quota={user_quota}",
        "total-quota=64",
        "no-cli",
        "no-tls",  # no certificate in tests; production serves turns: on 443 (docs/webrtc.md)
        "no-dtls",
        "no-software-attribute",
        f"userdb={workdir / 'turndb'}",
        f"pidfile={workdir / 'turnserver.pid'}",
        "log-file=stdout",
        "simple-log",
        "verbose",
    ]
    lines += [f"denied-peer-ip={entry}" for entry in DENIED_PEER_RANGES]
    # The documentation ranges the test namespaces use stand for "the internet": allowed
    # explicitly, as a deployment would allow nothing but the public internet.
    lines += [f"allowed-peer-ip={entry}" for entry in allowed_peers]
    return "\n".join(lines) + "\n"


@dataclass
class Coturn:
    process: subprocess.Popen[bytes]
    log_path: Path
    url_udp: str
    url_tcp: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_coturn(namespace: str, address: str, secret: str, workdir: Path, *,
               config_text: str | None = None) -> Iterator[Coturn]:
    """`config_text`: a whole configuration of the caller's (the stack's own) instead of this module's."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "turnserver.conf"
    config.touch(mode=0o600)
    config.write_text(config_text or coturn_config(address=address, secret=secret, workdir=workdir))
    log_path = workdir / "turnserver.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "turnserver", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    turn = Coturn(
        process,
        log_path,
        url_udp=f"turn:{address}:{TURN_PORT}?transport=udp",
        url_tcp=f"turn:{address}:{TURN_PORT}?transport=tcp",
    )
    try:
        wait_listening(
            namespace,
            f"{address}:{TURN_PORT}",
            protocols=("udp", "tcp"),
            alive=lambda: process.poll() is None,
            describe=turn.log,
            timeout=START_TIMEOUT,
        )
        yield turn
    finally:
        terminate(process)
