"""A relayed call's cost carries its TURN relay's share, measured by its bot host.

The whole product path, as tests/relay/test_relay_session.py runs it: a dispatcher in the hub
namespace with coturn, its bot in a namespace of its own, an aiortc caller in a third; neither peer
can reach the other, both take the relay policy, so the call's selected pair is relay ↔ relay. The
dispatcher prices the relay at `TURN_RELAY_USD_PER_GB` (a hosted relay's setting: both ways). The
bot's reported bytes are checked against the caller's own count of the same datagrams and against
what an Opus voice call can carry in the session's time.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.usage.relay_cost import PACKET_OVERHEAD_BYTES
from tests.relay.conftest import API_KEY
from tests.support.coturn import Coturn
from tests.support.netns import TURN_ADDRESS, RelayTopology
from tests.support.netns_dispatcher import run_dispatcher_in
from tests.support.netns_procs import run_in_namespace
from tests.support.netns_session import SPEECH, clean_env
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # two real-time WebRTC peers through the relay and a bot start-up: ~25 s

USD_PER_GB = 0.5
# A voice call's media, each way: Opus at most ~128 kbit/s with RTP/SRTP headers at 50 packets a
# second, RTCP and DTLS beside it: far below this, and far above what a broken count would be near.
MOST_BYTES_PER_SECOND = 40_000


@pytest.fixture
def priced_dispatcher(
    topology: RelayTopology, coturn: Coturn, turn_secret: str, tmp_path: Path
) -> Iterator[DispatcherProcess]:
    env = {
        **clean_env(),
        "DISPATCHER_API_KEYS": API_KEY,
        "TURN_URLS": f"{coturn.url_udp},{coturn.url_tcp}",
        "TURN_SHARED_SECRET": turn_secret,
        "ICE_TRANSPORT_POLICY": "relay",
        "TURN_RELAY_USD_PER_GB": str(USD_PER_GB),
    }
    with run_dispatcher_in(
        topology.hub, TURN_ADDRESS, bot_namespace=topology.bot, env=env, log_path=tmp_path / "dispatcher.log"
    ) as dispatcher:
        yield dispatcher


def session_in(hub: str, dispatcher: DispatcherProcess, session_id: str) -> dict[str, Any]:
    """`GET /sessions/{id}`, asked from the hub (the only namespace that reaches the dispatcher)."""
    answer = subprocess.run(
        ["ip", "netns", "exec", hub, "curl", "-s", "--max-time", "10", "-H", f"Authorization: Bearer {API_KEY}",
         f"{dispatcher.base_url}/sessions/{session_id}"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert answer.returncode == 0, answer.stderr
    shown: dict[str, Any] = json.loads(answer.stdout)
    return shown


def ended_cost(hub: str, dispatcher: DispatcherProcess, session_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The session's cost once its bot reported its end (the caller left: its pipeline ends)."""
    deadline, session = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        session = session_in(hub, dispatcher, session_id)
        cost = session.get("cost") or {}
        if session.get("status") == "ended" and not cost.get("estimated") and "relay" in cost:
            return dict(cost)
        time.sleep(0.5)
    raise AssertionError(f"no ended cost with its relay: {session}\ndispatcher log:\n{dispatcher.log()[-4000:]}")


def test_a_relayed_calls_cost_prices_the_bytes_its_bot_sent_through_the_relay(
    topology: RelayTopology, priced_dispatcher: DispatcherProcess, tmp_path: Path
) -> None:
    dispatcher = priced_dispatcher
    with run_in_namespace(
        topology.client, ["-m", "tests.support.relay_client"], env=clean_env(), stderr_path=tmp_path / "client.log"
    ) as client:
        client.send({"start_url": f"{dispatcher.base_url}/start", "headers": {"Authorization": f"Bearer {API_KEY}"},
                     "wav": str(SPEECH)})
        session_id = client.next("started", timeout=60)["started"]
        try:
            caller = client.next("result", timeout=90)["result"]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ndispatcher log:\n{dispatcher.log()[-4000:]}") from None
    assert (caller["local_type"], caller["remote_type"]) == ("relay", "relay"), caller

    cost = ended_cost(topology.hub, dispatcher, session_id)
    relay = cost["relay"]
    assert (relay["relayed"], relay["local_candidate"]) == (True, "relay"), relay
    # The caller's relay address, as the bot's ICE agent learnt it: from its trickled candidate
    # ("relay"), or from its checks, when they came first ("prflx", peer reflexive: RFC 8445 §7.3.1.3).
    assert relay["remote_candidate"] in ("relay", "prflx"), relay
    # The same datagrams, counted at both ends: the bot counts to its end, after the caller's count.
    assert 0.8 * caller["bytes_received"] <= relay["bytes_sent"], (relay, caller)
    assert 0.8 * caller["bytes_sent"] <= relay["bytes_received"], (relay, caller)
    # And no more than a voice call carries in the session's time, each way.
    most = MOST_BYTES_PER_SECOND * cost["session_seconds"]
    assert relay["bytes_sent"] <= most and relay["bytes_received"] <= most, (relay, cost["session_seconds"])
    priced = (relay["bytes_sent"] + relay["bytes_received"]
              + PACKET_OVERHEAD_BYTES * (relay["packets_sent"] + relay["packets_received"]))
    assert relay["usd"] == pytest.approx(priced * USD_PER_GB / 1e9, abs=1e-6) and relay["usd"] > 0, relay
    assert cost["relay_usd"] == relay["usd"] and relay["usd_per_gb"] == USD_PER_GB
    assert cost["total"] == pytest.approx(cost["machine_usd"] + cost["services"]["usd"] + relay["usd"], abs=2e-6)
    assert not any(line.startswith("TURN relay") for line in cost["not_counted"]), cost["not_counted"]
