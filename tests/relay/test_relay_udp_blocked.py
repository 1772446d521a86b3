"""A WebRTC session whose bot can send no UDP at all, as on Cloud Run (which documents none): its
media goes to the stack's TURN relay over TCP.

Debian's coturn runs with the configuration the stack writes (stacks/shared/turn_server.py
`coturn_config`; the boot script's own additions, the listening address and the secret, added
here). In the bot's namespace the firewall drops every UDP datagram in or out (but on loopback): a
STUN Binding over UDP to the relay goes unanswered there, over TCP it is answered (the controls).
The real SmallWebRTC bot (`python -m bot --transport webrtc`) and a real aiortc client then hold a
session with `TURN_URLS` as the stack hands them out and the job's `BOT_TURN_TRANSPORT=tcp`: the
speech goes in and its echo comes back, relay to relay, and the firewall counted the bot's TCP to
the relay's port.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.media.turn import TurnCredentials, TurnSettings
from stacks.config.turn import TurnSettings as StackTurnSettings
from stacks.shared.turn_server import LISTEN_PORT
from stacks.shared.turn_server import coturn_config as stack_coturn_config
from stacks.shared.turn_server import urls as stack_urls
from tests.support.coturn import Coturn, run_coturn
from tests.support.netns import TURN_ADDRESS, RelayTopology
from tests.support.netns_session import run_session

pytestmark = pytest.mark.slow  # two real-time WebRTC peers and a bot start-up: ~30 s

SESSION = "0123456789abcdef01234567"
LOCK_WAIT = 30  # seconds iptables may wait for the xtables lock another program holds
JOB_ENV = {"BOT_TURN_TRANSPORT": "tcp"}  # what the stack's Cloud Run job sets on its bots
STACK_TURN = StackTurnSettings(mode="managed", shared_secret=None)  # type: ignore[arg-type] # its relay, no TLS
# One STUN Binding request (RFC 8489) over `transport`; prints "answered" or "silent".
STUN_PROBE = """
import os, socket, struct, sys
transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
with socket.socket(socket.AF_INET, kind) as s:
    s.settimeout(3)
    try:
        s.connect((host, port)); s.send(request); print("answered" if s.recv(2048)[:2] == b"\\x01\\x01" else "other")
    except OSError:
        print("silent")
"""


@pytest.fixture
def stack_coturn(topology: RelayTopology, turn_secret: str, tmp_path: Path) -> Iterator[Coturn]:
    """coturn with the stack's configuration, and what its boot script appends (address, secret)."""
    workdir = tmp_path / "coturn"
    config = stack_coturn_config(STACK_TURN)
    config = config.replace("syslog\n", "log-file=stdout\n") + "".join(
        f"{line}\n" for line in (f"listening-ip={TURN_ADDRESS}", f"relay-ip={TURN_ADDRESS}",
                                 f"static-auth-secret={turn_secret}", f"userdb={workdir / 'turndb'}",
                                 f"pidfile={workdir / 'turnserver.pid'}"))
    with run_coturn(topology.hub, TURN_ADDRESS, turn_secret, workdir, config_text=config) as server:
        yield server


def firewall(namespace: str, *rule: str) -> str:
    """`iptables` in `namespace`. `-w`: wait for the xtables lock, which every namespace shares
    (/run/xtables.lock), where the iptables build gives up at once while another program changes its
    firewall; LOCK_WAIT bounds the wait so a stuck holder fails here with iptables' own reason."""
    result = subprocess.run(["ip", "netns", "exec", namespace, "iptables", "-w", str(LOCK_WAIT), *rule],
                            capture_output=True, text=True, timeout=LOCK_WAIT + 10, check=False)
    if result.returncode != 0:
        raise AssertionError(f"iptables {' '.join(rule)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def block_udp(namespace: str) -> None:
    """Every UDP datagram in or out dropped (loopback aside); TCP to the relay counted, and let through."""
    firewall(namespace, "-A", "OUTPUT", "-p", "tcp", "-d", TURN_ADDRESS, "--dport", str(LISTEN_PORT), "-j", "ACCEPT")
    firewall(namespace, "-A", "OUTPUT", "-p", "udp", "!", "-o", "lo", "-j", "DROP")
    firewall(namespace, "-A", "INPUT", "-p", "udp", "!", "-i", "lo", "-j", "DROP")


def packets(namespace: str, chain: str, target: str, protocol: str) -> int:
    """The packets `chain`'s rule with `target` and `protocol` counted."""
    for line in firewall(namespace, "-L", chain, "-v", "-x", "-n").splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == target and fields[3] in (protocol, {"tcp": "6", "udp": "17"}[protocol]):
            return int(fields[0])
    raise AssertionError(f"no {target} {protocol} rule in {chain}")


def stun(namespace: str, transport: str) -> str:
    return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", STUN_PROBE, transport,
                           TURN_ADDRESS, str(LISTEN_PORT)], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


def test_a_bot_with_no_udp_talks_through_the_stacks_relay_over_tcp(
    topology: RelayTopology, stack_coturn: Coturn, turn_secret: str, tmp_path: Path
) -> None:
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (Debian's iptables package; .ci/run installs it)")
    assert stun(topology.bot, "udp") == "answered"  # the relay answers UDP from there: the control
    block_udp(topology.bot)
    assert (stun(topology.bot, "udp"), stun(topology.bot, "tcp")) == ("silent", "answered")
    tcp_before = packets(topology.bot, "OUTPUT", "ACCEPT", "tcp")
    # TURN_URLS as the stack hands them out (stacks/shared/turn_server.py `urls`: UDP first), and the
    # job's own BOT_TURN_TRANSPORT=tcp (stacks/gcp/bot_job.py): aiortc uses the first TURN URL only.
    settings = TurnSettings.from_env({"TURN_URLS": ",".join(stack_urls(STACK_TURN, TURN_ADDRESS)),
                                      "TURN_SHARED_SECRET": turn_secret}, cloud=True)
    assert settings is not None
    credentials = TurnCredentials(settings)

    session = run_session(topology, tmp_path, session_id=SESSION, bot_ice=credentials.ice_config(SESSION, role="bot"),
                          client_ice=credentials.ice_config(SESSION), bot_extra_env=JOB_ENV)

    result = session.result
    assert result["replied"], (result, session.client.stderr_tail(), session.bot.stderr_tail())
    assert result["similarity"] > 0.5, result  # the echo of the speech (tests/relay/test_relay_session.py)
    assert (result["local_type"], result["remote_type"], result["remote_address"]) == ("relay", "relay", TURN_ADDRESS)
    candidates = [line for line in session.answer_sdp.splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" typ relay" in line for line in candidates), candidates
    # The bot's media went over TCP to the relay: the firewall let thousands of its packets through.
    assert packets(topology.bot, "OUTPUT", "ACCEPT", "tcp") - tcp_before > 100
