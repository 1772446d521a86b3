"""Every call kept, end to end with real processes: the dispatcher records a session its real bot
served to an aiortc caller speaking a WAV, into its local folder store, and (a bot killed mid-call)
into S3 (moto). The same killed call in the GCS and Azure stores is proven at their clients' level
against the same emulators (tests/dispatcher/artifacts/test_killed_bot_in_cloud_stores.py), and the
checkpoint a stack leaves unset (20 s) in tests/dispatcher/artifacts/test_recordings.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.artifacts.building import build_store
from dispatcher.artifacts.settings import ArtifactSettings
from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import Stereo, artifacts_when_kept, loud_seconds, read_stereo, timeline_event
from tests.support.cloud_stores import CloudStore, s3_store
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, children_of, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real bot, real WebRTC, real speech


@pytest.fixture(scope="module")
def recording_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {"RESERVE_MAX_IDLE": "0", "RECORDING": "on", "RECORDING_DESTINATION": str(folder)}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running, folder


async def test_a_spoken_session_leaves_a_two_channel_recording_as_long_as_the_session(recording_dispatcher):
    dispatcher, _ = recording_dispatcher
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        started = await api.post("/start", json={"body": {}})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        async with WebRTCClient(dispatcher.base_url + started.json()["offer_url"]) as client:
            result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
            assert result.replied, result.summary()
            await asyncio.sleep(1.0)  # a quiet second at the end: the recording runs to the session's end
            assert (await api.delete(f"/sessions/{session_id}")).status_code == 204

        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json", "transcript.jsonl",
                                                               "logs.jsonl"})
        joined = await timeline_event(api, session_id, "joined")
        ended = await timeline_event(api, session_id, "ended")
        kept = await timeline_event(api, session_id, "recording_ready")
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(timeout=30) as download:
            wav = (await download.get(urls["recording.wav"])).content
            report = (await download.get(urls["report.json"])).json()
            turns = [json.loads(line) for line in (await download.get(urls["transcript.jsonl"])).text.splitlines()]
            logs = [json.loads(line) for line in (await download.get(urls["logs.jsonl"])).text.splitlines()]

    stereo = read_stereo(wav)
    session_seconds = ended["at"] - joined["at"]
    assert session_seconds >= 5.0
    assert stereo.sample_rate == 16000
    assert abs(stereo.seconds - session_seconds) <= 1.0, (stereo.seconds, session_seconds)
    assert kept["seconds"] == pytest.approx(stereo.seconds, abs=0.01)
    # The caller's words on the left, the parrot's echo of them on the right, after them.
    caller, bot = loud_seconds(stereo.left, 16000), loud_seconds(stereo.right, 16000)
    caller_speech = sum(end - start for start, end in caller)
    assert caller_speech >= 2.0, caller
    echo = [(start, end) for start, end in bot if start >= caller[0][1] - 0.5]
    assert sum(end - start for start, end in echo) >= 2.0, (caller, bot)
    assert echo[0][0] >= caller[-1][1] - 0.5, (caller, bot)  # the reply follows the words it echoes
    assert report["recording"]["status"] == "complete"
    assert report["recording"]["channels"] == {"left": "caller", "right": "bot"}
    # The parrot has no STT or TTS text: its turns are timings, the reply's measured from the caller's end.
    replies = [turn for turn in turns if turn["who"] == "bot" and "latency" in turn]
    assert replies and 0 < replies[0]["latency"] < 5.0, turns
    assert abs(replies[0]["start"] - echo[0][0]) < 0.5, (turns, echo)  # where the WAV has the reply
    assert report["transcript"]["kept"] is True
    # The bot's own log lines, as its stderr had them: the session's serving is in them.
    assert logs and all(set(line) == {"time", "level", "logger", "message"} for line in logs)
    assert report["bot_logs"]["kept"] is True and report["bot_logs"]["lines"] == len(logs)
    assert report["turns"]["answered"] == len(replies) and report["turns"]["p50"] == pytest.approx(
        sorted(r["latency"] for r in replies)[(len(replies) + 1) // 2 - 1])
    assert report["cost"]["provider"] == "local" and report["cost"]["machine_seconds"] > 0
    assert report["kept"] == {"recording.wav": True, "transcript.jsonl": True, "logs.jsonl": True}


@pytest.fixture(scope="module")
def cloud_recording_dispatcher(tmp_path_factory: pytest.TempPathFactory
                               ) -> Iterator[tuple[DispatcherProcess, CloudStore]]:
    """A dispatcher that records into S3's emulator, each part checkpointed every 2 s."""
    with s3_store() as store:
        env = {"RESERVE_MAX_IDLE": "0", "RECORDING": "on", "RECORDING_CHECKPOINT_SECONDS": "2", **store.env}
        with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
            yield running, store


@dataclass(frozen=True)
class KilledCall:
    """What a call whose bot was SIGKILLed left: how long it ran, its recording and the store's account."""

    session_id: str
    ran: float  # joined → killed
    stereo: Stereo
    report: dict[str, Any]
    partial: dict[str, Any]
    listing: dict[str, Any]


async def killed_call(dispatcher: DispatcherProcess, store: CloudStore, kill_after: float) -> KilledCall:
    """A spoken call whose bot is SIGKILLed `kill_after` seconds after its reply (its environment
    checked first: no credential of the store), then its kept recording, downloaded."""
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        started = await api.post("/start", json={"body": {}})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        async with WebRTCClient(dispatcher.base_url + started.json()["offer_url"]) as client:
            (bot,) = children_of(dispatcher.process.pid)
            environment = Path(f"/proc/{bot}/environ").read_bytes().split(b"\0")
            assert not [v for v in environment if v.startswith(tuple(n.encode() for n in store.credential_names))
                        or store.secret.encode() in v.split(b"=")[-1:]]
            result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
            assert result.replied, result.summary()
            joined = await timeline_event(api, session_id, "joined")
            await asyncio.sleep(kill_after)
            os.kill(bot, signal.SIGKILL)
            killed_at = time.time()
            partial = await timeline_event(api, session_id, "recording_partial")
            listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json"})
    urls = {a["name"]: a["url"] for a in listing["artifacts"]}
    async with httpx.AsyncClient(timeout=30) as download:
        stereo = read_stereo((await download.get(urls["recording.wav"])).content)
        report = (await download.get(urls["report.json"])).json()
    return KilledCall(session_id, killed_at - joined["at"], stereo, report, partial, listing)


async def nothing_left_open(store: CloudStore) -> None:
    """The store as the dispatcher builds it, from the same environment: no upload left open."""
    view = build_store(ArtifactSettings.from_env(store.env), store.env)
    assert await view.open_uploads("") == []


async def test_a_bot_killed_mid_call_leaves_the_parts_it_had_uploaded_and_no_open_upload(cloud_recording_dispatcher):
    dispatcher, store = cloud_recording_dispatcher
    call = await killed_call(dispatcher, store, 3.0)  # at least one checkpoint after the reply
    stereo, report = call.stereo, call.report
    # All but the last checkpoint's worth (2 s, and the writer's 1 s hold) is kept.
    assert call.ran - 4.0 <= stereo.seconds <= call.ran + 0.5, (stereo.seconds, call.ran)
    assert call.partial["seconds"] == pytest.approx(stereo.seconds, abs=0.01)
    assert loud_seconds(stereo.left, 16000) and loud_seconds(stereo.right, 16000)
    assert report["recording"]["status"] == "partial"
    assert "killed" in report["recording"]["why"]
    assert "logs.jsonl" not in {a["name"] for a in call.listing["artifacts"]}
    assert "killed or lost" in report["kept"]["logs.jsonl"]
    assert call.listing["folder"].startswith("voice/") and call.listing["folder"].endswith(f"/{call.session_id}/")
    await nothing_left_open(store)
