"""One API key cannot exhaust the managed TURN relay for the others.

The attack (finding: start, take the credential's 10 allocations, DELETE, again and again): a
DELETE ends the session but not its TURN credential, whose allocations live on (coturn refreshes
them with the key derived at allocation, even after the credential expired), so a few starts
filled the relay's `total-quota` and every other key's new session got 486 (Allocation Quota
Reached). Here coturn runs with the stack's own configuration (a small `total-quota`) on loopback,
the attacker's loop is bounded by the relay's size, and the other key's client allocates at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun

from dispatcher.settings import Settings, hash_api_key
from stacks.config.turn import USER_QUOTA, TurnSettings
from stacks.shared.turn_server import coturn_config
from tests.security.conftest import KEY_A, KEY_B, MakeDispatcher
from tests.support.ports import free_port_pair
from tests.support.turn_client import TurnClient

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (`turnserver`) is not installed")

TOTAL_QUOTA = 6 * USER_QUOTA  # six sessions' clients fill the relay
PER_KEY = 3  # TURN_CREDENTIALS_PER_KEY: half the relay, at most, for one key
SECRET = "turn-shared-secret-0123456789"
START_TIMEOUT = 15.0


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """coturn on loopback with the production configuration: only the port, addresses, log and
    quota differ."""
    port = free_port_pair(span=2 + 2 * TOTAL_QUOTA)  # the listening port (TCP and UDP), then the relay range
    config = coturn_config(TurnSettings(mode="managed", shared_secret=None,  # type: ignore[arg-type]
                                        relay_ports=(port + 1, port + 1 + 2 * TOTAL_QUOTA), total_quota=TOTAL_QUOTA))
    config = config.replace("listening-port=3478\n", f"listening-port={port}\n")
    config = config.replace("syslog\n", f"log-file={tmp_path}/turn.log\n")
    config += f"listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nstatic-auth-secret={SECRET}\n"
    path = tmp_path / "turnserver.conf"
    path.touch(mode=0o600)
    path.write_text(config)
    process = subprocess.Popen(["turnserver", "-c", str(path), "--pidfile", str(tmp_path / "pid")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(("127.0.0.1", port), process, tmp_path / "turn.log")
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_answering(server: tuple[str, int], process: subprocess.Popen[bytes], log: Path) -> None:
    """coturn answers a STUN Binding request, or the test fails with its log (a port it could not
    bind is retried forever, so a dead process is not the only way it never starts)."""
    deadline = time.monotonic() + START_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while process.poll() is None and time.monotonic() < deadline:
            request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
            probe.sendto(bytes(request), server)
            try:
                if stun.parse_message(probe.recv(2048)).transaction_id == request.transaction_id:
                    return
            except TimeoutError:
                continue
    text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    pytest.fail(f"coturn did not answer on {server} (exit {process.poll()}):\n{text}")


def allocate(server: tuple[str, int], ice: dict, clients: list[TurnClient]) -> int:
    """One allocation with the start answer's TURN credential; its error code, 0 for success."""
    [turn] = ice["iceServers"]
    client = TurnClient(server, turn["username"], turn["credential"])
    clients.append(client)
    return client.allocate()


async def test_one_key_cannot_exhaust_the_relay_for_another(relay: tuple[str, int],
                                                            make_dispatcher: MakeDispatcher) -> None:
    settings = Settings(max_concurrent_sessions=50, api_key_hashes=frozenset(map(hash_api_key, (KEY_A, KEY_B))))
    d = await make_dispatcher(settings, TURN_URLS=f"turn:{relay[0]}:{relay[1]}?transport=udp",
                              TURN_SHARED_SECRET=SECRET, TURN_CREDENTIALS_PER_KEY=str(PER_KEY))
    attacker, victim = ({"Authorization": f"Bearer {key}"} for key in (KEY_A, KEY_B))
    clients: list[TurnClient] = []
    held, refused = 0, None
    try:
        for _ in range(TOTAL_QUOTA // USER_QUOTA):  # enough rounds to fill the relay, if allowed
            started = await d.client.post("/start", json={"transport": "webrtc"}, headers=attacker)
            if started.status_code == 429:
                refused = started
                break
            assert started.status_code == 201, started.text
            ice = started.json()["iceConfig"]
            codes = [allocate(relay, ice, clients) for _ in range(USER_QUOTA)]
            assert codes == [0] * USER_QUOTA  # control: the attack really holds the relay's capacity
            held += USER_QUOTA
            deleted = await d.client.delete(f"/sessions/{started.json()['sessionId']}", headers=attacker)
            assert deleted.status_code in (202, 204)
        started = await d.client.post("/start", json={"transport": "webrtc"}, headers=victim)
        assert started.status_code == 201, started.text
        assert allocate(relay, started.json()["iceConfig"], clients) == 0, "486: the relay is full"

        assert held == PER_KEY * USER_QUOTA  # the attacker got its share of the relay, no more
        assert refused is not None, "the key was never refused"
        assert refused.json()["error"]["code"] == "turn_credentials_exhausted"
        assert int(refused.headers["Retry-After"]) > 0
    finally:
        for client in clients:
            client.close()
