"""Pipecat's official JS client in headless Chromium, through the relay.

Chromium runs in the client namespace (no route to the bot), the dispatcher in the hub, a real
bot in its own namespace dialling the dispatcher's channel and relaying only. The page's
`startBotAndConnect` takes the TURN credentials from the start answer's `iceConfig`; since
nothing else connects the two namespaces, audio both ways proves the relay carried it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relay.conftest import API_KEY
from tests.support.browser import chromium_path
from tests.support.netns import RelayTopology
from tests.support.netns_procs import run_in_namespace
from tests.support.netns_session import SPEECH, clean_env
from tests.support.processes import DispatcherProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def test_the_official_client_in_chromium_talks_to_a_bot_through_the_relay(
    topology: RelayTopology, relay_dispatcher: DispatcherProcess, tmp_path: Path
) -> None:
    with run_in_namespace(
        topology.client, ["-m", "tests.support.relay_browser"], env=clean_env(), stderr_path=tmp_path / "browser.log"
    ) as browser:
        browser.send(
            {"url": relay_dispatcher.base_url, "key": API_KEY, "speech": str(SPEECH), "workdir": str(tmp_path)}
        )
        result = browser.next("result", timeout=170)["result"]

    state = result["state"]
    assert result["connected"] and result["heard"], (state, relay_dispatcher.log()[-3000:])
    assert result["turn"], state  # the bot heard the user's speech (RTVI user-stopped-speaking)
    assert state["maxBotLevel"] > 0.05, state
    assert not state["errors"], state
