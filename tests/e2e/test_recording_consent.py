"""A `consent` session end to end with real processes: the real bot host plays the announcement
voicefleet ships to an aiortc caller before anything is kept, the timeline and report say when,
and the recording runs from its end. The user's bot (the parrot) is unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.recording.announcement import DEFAULT, load_announcement
from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import artifacts_when_kept, read_stereo, timeline_event
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real bot, real WebRTC, real speech


@pytest.fixture(scope="module")
def consent_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {"RESERVE_MAX_IDLE": "0", "RECORDING": "consent", "RECORDING_RETENTION_DAYS": "30",
           "RECORDING_DESTINATION": str(folder)}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running, folder


async def test_the_caller_hears_the_announcement_and_the_recording_starts_after_it(consent_dispatcher):
    dispatcher, folder = consent_dispatcher
    announcement = load_announcement(DEFAULT).seconds
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        started = await api.post("/start", json={"body": {}})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        async with WebRTCClient(dispatcher.base_url + started.json()["offer_url"]) as client:
            result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
            assert result.replied, result.summary()  # the announcement is the first thing it hears
            await asyncio.sleep(announcement + 1.0)  # the parrot's echo follows the announcement
            assert (await api.delete(f"/sessions/{session_id}")).status_code == 204

        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json", "transcript.jsonl"})
        consent = await timeline_event(api, session_id, "recording_consent")
        joined = await timeline_event(api, session_id, "joined")
        ended = await timeline_event(api, session_id, "ended")
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(timeout=30) as download:
            wav = (await download.get(urls["recording.wav"])).content
            report = (await download.get(urls["report.json"])).json()
            turns = [json.loads(line) for line in (await download.get(urls["transcript.jsonl"])).text.splitlines()]

    assert consent["seconds"] == pytest.approx(announcement, abs=0.01)
    assert report["consent"]["seconds"] == consent["seconds"] and report["retention_days"] == 30
    assert listing["folder"].startswith("retain-30d/")
    stereo = read_stereo(wav)
    # Kept from the announcement's end: shorter than the session by at least the announcement.
    assert stereo.seconds <= ended["at"] - joined["at"] - announcement + 0.5, (stereo.seconds, joined, ended)
    assert stereo.seconds >= 1.0
    assert all(turn["start"] >= 0 for turn in turns)
