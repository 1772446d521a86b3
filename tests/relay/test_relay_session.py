"""A voice session whose two peers cannot reach each other: everything goes through the TURN relay.

The client (aiortc) and a real `python -m bot` each live in a network namespace whose only route
leads to the TURN server's namespace. Both take credentials from dispatcher/turn.py and use the
relay policy, so the bot's answer offers nothing but relay candidates and the nominated pair is
relay ↔ relay; the user's speech goes in and the bot's echo comes back out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dispatcher.turn import TurnCredentials, TurnSettings
from tests.support.coturn import Coturn
from tests.support.netns import BOT_ADDRESS, CLIENT_ADDRESS, TURN_ADDRESS, RelayTopology
from tests.support.netns_session import run_session

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
    assert result["similarity"] > 0.5, result  # the bot's echo of the speech, not just any noise
    assert (result["local_type"], result["remote_type"], result["remote_address"]) == ("relay", "relay", TURN_ADDRESS)
