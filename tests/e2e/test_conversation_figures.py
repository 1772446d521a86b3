"""The conversation in figures, end to end with real processes and recording off: the parrot's real
pipeline answers an aiortc caller's two utterances, and its bot host's observer (bot/conversation.py)
reports the turns with the session's end; the dispatcher keeps them on the session's `ended` event,
`voicefleet session ID` shows them, and a caller who hangs up after the greeting left within the first
turn."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import timeline_event
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient
from voicefleet.main import voicefleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # two real bots, real WebRTC, real speech


async def test_a_conversation_without_a_recording_is_reported_in_figures_with_its_end(tmp_path) -> None:
    with run_dispatcher(tmp_path, {"RESERVE_MAX_IDLE": "0"}) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
            started = await api.post("/start", json={"body": {}})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            heard: list[float] = []
            async with WebRTCClient(dispatcher.base_url + started.json()["offer_url"]) as client:
                for _ in range(2):
                    result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
                    assert result.replied and result.reply_latency is not None, result.summary()
                    heard.append(result.reply_latency)
                    await asyncio.sleep(1.0)  # the echo plays out before the next utterance
            figures = (await timeline_event(api, session_id, "ended"))["conversation"]

            left = await api.post("/start", json={"body": {}})
            assert left.status_code == 201, left.text
            async with WebRTCClient(dispatcher.base_url + left.json()["offer_url"]):
                await asyncio.sleep(3.0)  # the greeting, then the caller hangs up without a word
            hung_up = (await timeline_event(api, left.json()["session_id"], "ended"))["conversation"]
        shown = CliRunner().invoke(voicefleet, ["session", session_id], prog_name="voicefleet",
                                   env={"VOICEFLEET_URL": dispatcher.base_url})

    assert figures["caller_turns"] == 2 and figures["unanswered"] == 0, figures
    assert figures["bot_turns"] == 3 and figures["cut_off"] == 0, figures  # the greeting and two echoes
    assert len(figures["latencies"]) == 2 and figures["left_in_first_turn"] is False, figures
    # The host's own latency (the caller's end of speech → the bot's first audio) is what the caller heard,
    # less the network's and the jitter buffer's share.
    for host, caller in zip(figures["latencies"], heard, strict=True):
        assert 0.0 < host <= caller + 0.2, (figures, heard)
    assert hung_up["caller_turns"] == 0 and hung_up["left_in_first_turn"] is True, hung_up
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.stdout.splitlines() if line.startswith("CONVERSATION"))
    assert "2 caller turns, none unanswered, answered in" in line and "0 of 3 bot turns cut off" in line, line
