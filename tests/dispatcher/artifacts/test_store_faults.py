"""A store that fails as a call ends: what was kept is never dropped for it. moto's S3 behind a TCP
gate the test takes down (tests/support/tcp_gate.py): down a few seconds at the hang-up, everything
is written once it is back; down for good, the parts stay in their upload, the timeline and
`GET /status` say so, and the next sweep writes it all, with the session's own cause. A folder store
that cannot join the parts (the process's file size limit: EFBIG, as a full disk's ENOSPC) lists no
recording, keeps every part, and says why in status."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botchannel.recording import wav_header
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.orphans import OrphanSweep
from dispatcher.artifacts.reading import ArtifactReader
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.s3_store import S3Store
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import PART_PATH, SignedPaths
from dispatcher.artifacts.store import StoreError
from tests.support.file_limit import small_files
from tests.support.tcp_gate import TcpGate, tcp_gate

SESSION = "0123456789abcdef01234567"
ENDED = "the bot ended the session (signal)"
TURNS = [{"who": "caller", "text": "hello", "start": 0.5, "end": 1.2},
         {"who": "bot", "text": "hi there", "start": 1.9, "end": 2.6, "latency": 0.7, "interrupted": False}]
LINE = {"time": "2026-11-27T02:00:00.000+00:00", "level": "info", "logger": "bot", "message": "ready"}


class Timeline:
    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []

    def note(self, session_id: str, event: str, **fields: Any) -> None:
        self.notes.append((event, fields))

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return []

    def events(self) -> list[str]:
        return [event for event, _ in self.notes]


@pytest.fixture
def gated(s3_url: str) -> Iterator[tuple[TcpGate, S3Store]]:
    """An S3 store whose every call goes through a gate in front of moto, on a bucket of its own."""
    with tcp_gate(s3_url) as (gate, url):
        store = S3Store(f"calls-{uuid.uuid4().hex[:12]}", "voice", {"AWS_ENDPOINT_URL_S3": url,
                                                                      "AWS_REGION": "us-east-1"})
        store._client.create_bucket(Bucket=store.bucket)
        yield gate, store


async def a_call(recordings: SessionRecordings, audio: bytes) -> None:
    """A session whose bot uploaded its one part and handed over its account, turns and log lines."""
    await recordings.plan_for(SESSION, transport="webrtc", release="v7", key_name="acme")
    url = (await recordings.part_url(SESSION, {"part": 1}))["url"]
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.put(url, content=audio)).status_code == 200
    await recordings.bot_logs(SESSION, {"lines": [LINE]})
    await recordings.bot_finished(SESSION, {"parts": 1, "bytes": len(audio), "degraded": [], "transcript": TURNS})


def names(store: S3Store) -> set[str]:
    listed = store._client.list_objects_v2(Bucket=store.bucket, Prefix="voice/retain-forever/2026")
    return {o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])}


async def test_a_store_down_for_seconds_at_the_hang_up_loses_nothing(gated: tuple[TcpGate, S3Store]) -> None:
    gate, store = gated
    timeline = Timeline()
    recordings = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                                   region="eu", provider="local")
    audio = wav_header(16000) + b"\1\0" * 32000  # a second of the call
    await a_call(recordings, audio)
    gate.down()
    finishing = asyncio.create_task(recordings.finish(SESSION, ENDED))
    await asyncio.sleep(4)  # the hang-up's end meets a store that resets every connection
    assert not finishing.done() and recordings.recorded(SESSION)  # not erasable before its end is written
    assert recordings.status()["error"]
    gate.up()
    report = await asyncio.wait_for(finishing, 120)
    assert report is not None and report["recording"]["status"] == "complete", report
    assert report["recording"]["seconds"] == 1.0 and report["transcript"]["kept"] and report["bot_logs"]["kept"]
    assert names(store) == {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json"}
    assert timeline.events()[-2:] == ["recording_delayed", "recording_ready"]
    assert "error" not in recordings.status() and not recordings.recorded(SESSION)


async def test_a_store_down_for_good_keeps_the_parts_says_so_and_the_sweep_writes_it_all_later(
        gated: tuple[TcpGate, S3Store]) -> None:
    gate, store = gated
    timeline = Timeline()
    recordings = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                                   region="eu", provider="local", finish_deadline_seconds=3)
    await a_call(recordings, wav_header(16000) + b"\1\0" * 32000)
    gate.down()
    assert await asyncio.wait_for(recordings.finish(SESSION, ENDED), 120) is None  # its deadline passed
    assert timeline.events()[-2:] == ["recording_delayed", "recording_unfinished"]
    assert "parts are kept" in timeline.notes[-1][1]["reason"]
    status = recordings.status()
    assert status["error"] and status["unfinished"]["left"] == 1
    assert recordings.recorded(SESSION)  # still: an erasure now would be undone by what it writes later
    gate.up()
    uploads = store._client.list_multipart_uploads(Bucket=store.bucket)["Uploads"]
    assert len(store._client.list_parts(Bucket=store.bucket, Key=uploads[0]["Key"],
                                        UploadId=uploads[0]["UploadId"])["Parts"]) == 1  # the part is kept
    assert await OrphanSweep(recordings, older_than_seconds=3600).sweep() == 1
    assert names(store) == {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json"}
    report = json.loads(store._client.get_object(Bucket=store.bucket, Key=uploads[0]["Key"].replace(
        "recording.wav", "report.json"))["Body"].read())
    assert report["recording"]["status"] == "complete" and report["ended"]["how"] == ENDED  # its own cause
    assert any("store_unreachable" in error for error in report["errors"]), report["errors"]  # a client's words
    assert timeline.events()[-1] == "recording_ready" and "unfinished" not in recordings.status()


async def test_a_folder_store_that_cannot_join_lists_no_recording_and_keeps_every_part(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    timeline = Timeline()
    recordings = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                                   region="eu", provider="local", finish_deadline_seconds=2)
    await recordings.plan_for(SESSION, transport="webrtc", release="v7", key_name="acme")
    audio = wav_header(16000) + b"\1\0" * (1024 * 1024)  # 2 MiB: past what may be written meanwhile
    url = (await recordings.part_url(SESSION, {"part": 1}))["url"]
    assert await store.accept_part(url.removeprefix(PART_PATH), audio)
    await recordings.bot_finished(SESSION, {"parts": 1, "bytes": len(audio), "degraded": []})
    with small_files():
        assert await recordings.finish(SESSION, ENDED) is None
    assert "File too large" in recordings.status()["error"]
    listing = await ArtifactReader(store, 300).listing(SESSION)
    assert listing is not None and [a["name"] for a in listing["artifacts"]] == []  # no recording offered
    parts = list((tmp_path / ".uploads").glob("*/00001.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == len(audio)  # the part is kept whole
    assert timeline.events()[-1] == "recording_unfinished"
    assert await OrphanSweep(recordings, older_than_seconds=3600).sweep() == 1  # the disk has room again
    listing = await ArtifactReader(store, 300).listing(SESSION)
    assert listing is not None
    assert {a["name"]: a["size"] for a in listing["artifacts"]}["recording.wav"] == len(audio)



async def test_a_part_the_folder_cannot_take_leaves_no_partial_file_and_its_retry_lands(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path, SignedPaths(b"k" * 32))
    recordings = SessionRecordings(ArtifactSettings(policy="on"), store, note=Timeline().note,
                                   events=Timeline().read, region="eu", provider="local")
    await recordings.plan_for(SESSION, transport="webrtc", release="v7", key_name="acme")
    audio = wav_header(16000) + b"\1\0" * (1024 * 1024)  # 2 MiB: past what may be written meanwhile
    token = (await recordings.part_url(SESSION, {"part": 1}))["url"].removeprefix(PART_PATH)
    with small_files(), pytest.raises(StoreError, match="File too large"):
        await store.accept_part(token, audio)
    (upload,) = (tmp_path / ".uploads").iterdir()
    assert sorted(p.name for p in upload.iterdir()) == ["key"]  # no `.writing` holding the space
    assert await store.accept_part(token, audio)  # the disk has room again: the bot's retry lands
    assert (upload / "00001.part").stat().st_size == len(audio)


async def test_every_object_of_a_session_carries_its_key_name_and_release(gated: tuple[TcpGate, S3Store]) -> None:
    _, store = gated
    timeline = Timeline()
    recordings = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                                   region="eu", provider="local")
    await a_call(recordings, wav_header(16000) + b"\1\0" * 3200)
    assert await recordings.finish(SESSION, ENDED) is not None
    listed = store._client.list_objects_v2(Bucket=store.bucket, Prefix="voice/retain-forever/")["Contents"]
    tags = {o["Key"].rsplit("/", 1)[1]: {t["Key"]: t["Value"] for t in store._client.get_object_tagging(
        Bucket=store.bucket, Key=o["Key"])["TagSet"]} for o in listed}
    assert set(tags) == {"recording.wav", "transcript.jsonl", "logs.jsonl", "report.json", f"{SESSION}.json"}
    assert all(tagged == {"key_name": "acme", "release": "v7"} for tagged in tags.values()), tags
