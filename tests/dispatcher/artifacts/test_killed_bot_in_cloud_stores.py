"""A bot killed mid-call, in the Google Cloud Storage and Azure Blob stores (the S3 store's case runs end to
end in tests/e2e/test_recording.py): the session's recordings (dispatcher/artifacts/recordings.py) over
the real store client, against the GCS fake that verifies V4 signatures and against azurite. The bot
uploaded its filling part at two checkpoints under one number and never closed it; the killed session's
end keeps the newest checkpoint, gives it its true WAV sizes, and leaves no upload open."""

from __future__ import annotations

import asyncio
import ssl
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import ExitStack
from io import BytesIO
from unittest import mock

import httpx
import pytest

from botchannel.recording import wav_header
from dispatcher.artifacts.azure_store import AzureBlobStore
from dispatcher.artifacts.gcs_store import GcsStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from tests.dispatcher.artifacts.test_recordings import SESSION, Timeline
from tests.fakes.azurite import azurite, missing
from tests.fakes.gcs import FakeGcs
from tests.fakes.server import serve

Cloud = tuple[GcsStore | AzureBlobStore, ssl.SSLContext | bool]  # the store, and what the bot's PUT trusts
KILLED = "its machine ended without the bot's end (killed or lost)"
SECOND = b"\x01\x00\x02\x00" * 16000  # a second of 16 kHz stereo


@pytest.fixture(params=["gs", "azure"])
async def cloud(request: pytest.FixtureRequest) -> AsyncIterator[Cloud]:
    """The store as the dispatcher builds it on its emulator, and what the bot's PUT trusts (verify)."""
    with ExitStack() as stack:
        if request.param == "gs":
            gcs = stack.enter_context(serve(FakeGcs()))
            stack.enter_context(mock.patch.dict("os.environ", {"GOOGLE_APPLICATION_CREDENTIALS": gcs.credentials_file}))
            store: GcsStore | AzureBlobStore = GcsStore("team-calls", "voice", gcs.env)
            verify: ssl.SSLContext | bool = True
        else:
            if (why := missing()) is not None:
                pytest.skip(why)
            emulator = stack.enter_context(azurite())
            container = f"calls-{uuid.uuid4().hex[:12]}"
            await asyncio.to_thread(emulator.create_container, container)
            store = AzureBlobStore(emulator.destination(container, "voice"), emulator.identity_env)
            await store.check()
            verify = emulator.tls()
        try:
            yield store, verify
        finally:
            await store.aclose()


async def test_a_killed_bots_newest_checkpoint_is_kept_whole_and_no_upload_is_left_open(
        cloud: Cloud) -> None:
    store, verify = cloud
    timeline = Timeline()
    kept = SessionRecordings(ArtifactSettings(policy="on"), store, note=timeline.note, events=timeline.read,
                             region="eu", provider="local", clock=lambda: 1_795_000_000.0)
    assert await kept.plan_for(SESSION, transport="webrtc", release="v1", key_name=None) is not None
    url = (await kept.part_url(SESSION, {"part": 1}))["url"]
    async with httpx.AsyncClient(timeout=30, verify=verify) as bot:  # the bot's PUTs: the URL alone
        for seconds in (1, 3):  # two checkpoints of the part still filling, the WAV's sizes not yet known
            assert (await bot.put(url, content=wav_header(16000) + SECOND * seconds)).is_success
    report = await kept.finish(SESSION, KILLED)
    assert report is not None and report["recording"]["status"] == "partial", report
    assert report["recording"]["seconds"] == 3.0 and "killed" in report["recording"]["why"], report
    assert timeline.notes[-1][1] == "recording_partial"
    (recording,) = [o.key for o in await store.objects_under("voice/") if o.key.endswith("/recording.wav")]
    data = await store.get(recording)
    assert data is not None
    with wave.open(BytesIO(data)) as wav:  # its header patched: a player reads all of it
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 16000, 3 * 16000)
    assert await store.open_uploads("") == []
