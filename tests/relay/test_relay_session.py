"""A voice session whose two peers cannot reach each other: everything goes through the TURN relay.

The client (aiortc) and a real `python -m bot` each live in a network namespace whose only route
leads to the hub namespace (coturn, and the dispatcher). Both take credentials from
dispatcher/media/turn.py and use the relay policy, so the bot's answer offers nothing but relay
candidates and the nominated pair is relay ↔ relay; the user's speech goes in and the bot's echo
comes back out. The first test carries the offer by hand; the second runs the whole product path:
`POST /start` on a dispatcher, the bot dialling its control channel from its own namespace, the
offer through the dispatcher and the channel, TURN credentials from the start answer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dispatcher.media.turn import TurnCredentials, TurnSettings
from tests.relay.conftest import API_KEY
from tests.support.coturn import Coturn
from tests.support.netns import BOT_ADDRESS, CLIENT_ADDRESS, TURN_ADDRESS, RelayTopology
from tests.support.netns_procs import run_in_namespace
from tests.support.netns_session import SPEECH, clean_env, run_session
from tests.support.processes import DispatcherProcess, children_of, listening_sockets

pytestmark = pytest.mark.slow  # two real-time WebRTC peers, ~6 s of speech and echo, a bot start-up: ~25 s

SESSION = "0123456789abcdef01234567"


def no_route(namespace: str, address: str) -> bool:
    probe = subprocess.run(
        ["ip", "netns", "exec", namespace, "ip", "route", "get", address],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return probe.returncode != 0 and "unreachable" in probe.stderr


def test_speech_goes_through_the_relay_and_the_reply_comes_back(
    topology: RelayTopology, coturn: Coturn, turn_secret: str, tmp_path: Path
) -> None:
    assert no_route(topology.client, BOT_ADDRESS) and no_route(topology.bot, CLIENT_ADDRESS)
    settings = TurnSettings.from_env(
        {"TURN_URLS": f"{coturn.url_udp},{coturn.url_tcp}", "TURN_SHARED_SECRET": turn_secret}, cloud=True
    )
    assert settings is not None
    credentials = TurnCredentials(settings)

    session = run_session(
        topology,
        tmp_path,
        session_id=SESSION,
        bot_ice=credentials.ice_config(SESSION, role="bot"),
        client_ice=credentials.ice_config(SESSION),
    )

    candidates = [line for line in session.answer_sdp.splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" typ relay" in line for line in candidates), candidates
    assert BOT_ADDRESS not in session.answer_sdp  # the bot's own address never reaches the client
    result = session.result
    assert result["replied"], (result, session.client.stderr_tail(), session.bot.stderr_tail())
    # The echo of the speech, not a tone or noise (those score < 0.1, tests/bot/test_support_audio.py); two
    # Opus passes and frames lost or late on a loaded machine take it below the ~0.9 of a quiet one.
    assert result["similarity"] > 0.5, result
    assert (result["local_type"], result["remote_type"], result["remote_address"]) == ("relay", "relay", TURN_ADDRESS)


def test_a_session_through_the_dispatcher_signals_over_the_bot_channel_and_talks_through_the_relay(
    topology: RelayTopology, relay_dispatcher: DispatcherProcess, turn_secret: str, tmp_path: Path
) -> None:
    dispatcher = relay_dispatcher
    with run_in_namespace(
        topology.client, ["-m", "tests.support.relay_client"], env=clean_env(), stderr_path=tmp_path / "client.log"
    ) as client:
        client.send(
            {
                "start_url": f"{dispatcher.base_url}/start",
                "headers": {"Authorization": f"Bearer {API_KEY}"},
                "wav": str(SPEECH),
            }
        )
        started = client.next("started", timeout=60)
        bots = children_of(dispatcher.process.pid)
        listeners = tcp_listeners(bots, dispatcher.process.pid)  # the bots, while they serve
        try:
            result = client.next("result", timeout=90)["result"]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ndispatcher log:\n{dispatcher.log()[-4000:]}") from None

    session_id, ice = started["started"], started["ice_config"]
    assert ice["iceTransportPolicy"] == "relay"
    [server] = ice["iceServers"]
    assert server["username"].endswith(f":{session_id}") and turn_secret not in str(ice)
    assert result["replied"], (result, client.stderr_tail(), dispatcher.log()[-4000:])
    assert result["similarity"] > 0.5, result  # as above
    assert (result["local_type"], result["remote_type"], result["remote_address"]) == ("relay", "relay", TURN_ADDRESS)
    # The bots took their signalling over the channel they dialled: none of them listens on TCP.
    assert listeners and not any(listeners.values()), listeners
    assert turn_secret not in dispatcher.log()


def tcp_listeners(pids: list[int], parent: int) -> dict[int, list[str]]:
    """Each live process's listening TCP sockets (a process that exits meanwhile is skipped).

    A child still running the parent's program is a fork between its `fork` and its `exec` (the
    reserve refilling, say): it holds every descriptor of the parent, its listener included, until
    the exec closes them. It is not a bot yet, so it is skipped rather than read as one listening.
    """
    found = {}
    parent_command = Path(f"/proc/{parent}/cmdline").read_bytes()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == parent_command:
                continue
            found[pid] = [s for s in listening_sockets(pid) if s.startswith("tcp:")]
        except OSError:
            continue
    return found
