"""One voice session between a client namespace and a bot namespace (tests/support/netns.py).

A real `python -m bot --transport webrtc` runs in the bot namespace with the given ICE config
(`VOICEFLEET_ICE_CONFIG`), the aiortc user (tests/support/relay_client.py) in the client
namespace. Until the dispatcher carries cloud signalling over the bots' control channel, the
offer is carried by hand: from the client's stdout to the bot's loopback signalling port, from
inside the bot namespace (tests/support/netns_http.py). Used by tests/relay and bench/relay_latency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.netns import RelayTopology
from tests.support.netns_procs import REPO, JsonLinesProcess, run_in_namespace

SPEECH = REPO / "tests" / "fixtures" / "speech16k.wav"
BOT_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class NetnsSession:
    answer_sdp: str
    result: dict[str, Any]  # relay_client's result: replied, reply_latency, similarity, *_type, ...
    bot: JsonLinesProcess
    client: JsonLinesProcess


def clean_env() -> dict[str, str]:
    """This process's environment without any session or bot variable a shell may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "VOICEFLEET_", "BOT_", "TURN_"))}


def request_in(namespace: str, module: str, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Runs `python -m <module>` in the namespace with `request` as JSON on stdin; its JSON answer."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", module],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{module} in {namespace} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def run_session(
    topology: RelayTopology,
    workdir: Path,
    *,
    session_id: str,
    bot_ice: dict[str, Any] | None,
    client_ice: dict[str, Any] | None,
    listen_seconds: float = 15.0,  # the most to wait for the whole echo
    wav: Path = SPEECH,
    bot_extra_env: dict[str, str] | None = None,  # the bot machine's own (as a stack's job env sets it)
) -> NetnsSession:
    workdir.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    bot_env = {**env, "VOICEFLEET_SESSION_ID": session_id, "BOT_CONNECT_TIMEOUT_SECONDS": "60", **(bot_extra_env or {})}
    if bot_ice is not None:
        bot_env["VOICEFLEET_ICE_CONFIG"] = json.dumps(bot_ice)
    with (
        run_in_namespace(
            topology.bot, ["-m", "bot", "--transport", "webrtc"], env=bot_env, stderr_path=workdir / "bot.log"
        ) as bot,
        run_in_namespace(
            topology.client, ["-m", "tests.support.relay_client"], env=env, stderr_path=workdir / "client.log"
        ) as client,
    ):
        port = bot.next("event", "ready", timeout=BOT_READY_TIMEOUT)["port"]
        client.send({"ice_config": client_ice, "wav": str(wav), "listen_seconds": listen_seconds})
        offer = client.next("offer", timeout=30)["offer"]
        answered = request_in(
            topology.bot,
            "tests.support.netns_http",
            {"method": "POST", "url": f"http://127.0.0.1:{port}/api/offer", "json": offer},
        )
        if answered["status"] != 200:
            raise AssertionError(f"the bot refused the offer: {answered}; bot log:\n{bot.stderr_tail()}")
        answer = answered["body"]
        client.send({"answer": answer})
        result = client.next("result", timeout=60)["result"]
    return NetnsSession(answer_sdp=answer["sdp"], result=result, bot=bot, client=client)
