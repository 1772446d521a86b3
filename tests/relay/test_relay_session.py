"""A voice session whose two peers cannot reach each other: everything goes through the TURN relay.

The client (aiortc) and a real `python -m bot` each live in a network namespace whose only route
leads to the TURN server's namespace. Both take credentials from dispatcher/turn.py and use the
relay policy, so the bot's answer offers nothing but relay candidates and the nominated pair is
relay ↔ relay; the user's speech goes in and the bot's echo comes back out.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dispatcher.turn import TurnCredentials, TurnSettings
from tests.relay.conftest import run_in
from tests.support.coturn import Coturn
from tests.support.netns import BOT_ADDRESS, CLIENT_ADDRESS, TURN_ADDRESS, RelayTopology
from tests.support.netns_procs import run_in_namespace

pytestmark = pytest.mark.slow  # two real-time WebRTC peers, ~6 s of speech and echo, a bot start-up: ~25 s

SPEECH = Path(__file__).parents[1] / "fixtures" / "speech16k.wav"
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "VOICEFLEET_", "BOT_"))}
    bot_env = {**env, "VOICEFLEET_SESSION_ID": SESSION, "BOT_CONNECT_TIMEOUT_SECONDS": "60"}
    bot_env["VOICEFLEET_ICE_CONFIG"] = json.dumps(credentials.ice_config(SESSION, role="bot"))

    with (
        run_in_namespace(
            topology.bot, ["-m", "bot", "--transport", "webrtc"], env=bot_env, stderr_path=tmp_path / "bot.log"
        ) as bot,
        run_in_namespace(
            topology.client, ["-m", "tests.support.relay_client"], env=env, stderr_path=tmp_path / "client.log"
        ) as client,
    ):
        port = bot.next("event", "ready", timeout=60)["port"]
        client.send({"ice_config": credentials.ice_config(SESSION), "wav": str(SPEECH), "listen_seconds": 5.5})
        offer = client.next("offer", timeout=30)["offer"]
        # The dispatcher's part, carried here by hand: the offer reaches the bot's loopback port.
        answered = run_in(
            topology.bot,
            "tests.support.netns_http",
            {"method": "POST", "url": f"http://127.0.0.1:{port}/api/offer", "json": offer},
        )
        assert answered["status"] == 200, answered
        answer = answered["body"]
        candidates = [line for line in answer["sdp"].splitlines() if line.startswith("a=candidate")]
        assert candidates and all(" typ relay" in line for line in candidates), candidates
        assert BOT_ADDRESS not in answer["sdp"]  # the bot's own address never reaches the client
        client.send({"answer": answer})
        result = client.next("result", timeout=60)["result"]

    assert result["replied"], (result, client.stderr_tail(), bot.stderr_tail())
    assert result["similarity"] > 0.5, result  # the bot's echo of the speech, not just any noise
    assert (result["local_type"], result["remote_type"], result["remote_address"]) == ("relay", "relay", TURN_ADDRESS)
